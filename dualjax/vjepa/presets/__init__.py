"""Named V-JEPA configs, each a module with a module-level ``CONFIG: Config``.

``tiny`` (CPU, about a minute), ``figure2`` (the tiny model trained for the CPU Figure 2),
``vits16`` / ``vitb16`` (the paper's reference-scale ViT-S/16 and ViT-B/16). Loaded by name
with :func:`dualjax.vjepa.config.load`; a new preset is a new module here.
"""
