"""The ViT / V-JEPA trainer driven by the paper's SG, EMA and plain rules.

Modules: ``config`` (run configuration), ``vit`` (encoder f_θ), ``predictor`` (g_ψ), ``masks``
(multi-block 3D masks), ``data`` (grain pipelines, synthetic moving shapes), ``probe``
(attentive probe), ``train`` (objective F / E, train state and step, the loop), ``plots``.
The update rules and losses are :mod:`dualjax.rules` and :mod:`dualjax.objectives`, unchanged.
"""
