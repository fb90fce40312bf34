"""The ViT / V-JEPA trainer driven by the paper's SG, EMA and plain rules.

Modules: ``config`` (run configuration) and ``presets/`` (named configs), ``vit`` (encoder f_θ),
``predictor`` (g_ψ), ``masks`` (multi-block 3D masks), ``data`` (grain pipelines, synthetic
moving shapes) and ``video`` (video lists), ``model`` (f_θ, g_ψ as pure functions; objective F /
E), ``optim`` (AdamW, schedules, teacher rule), ``step`` (train state, ``build``, the pure step),
``parallel`` (mesh, shardings), ``rundir`` (run directory, checkpoints, metrics), ``probe``
(attentive probe) and ``augment`` (its optional augmentation), ``train`` (the loop), ``plots``.
The update rules and losses are
:mod:`dualjax.rules` and :mod:`dualjax.objectives`, unchanged.
"""
