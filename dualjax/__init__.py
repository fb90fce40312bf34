"""dualjax — Dual Perspectives on Non-Contrastive Self-Supervised Learning, in JAX.

Modules (the paper's structure):

* :mod:`dualjax.objectives` — losses l, the regularizer Ω, F(θ, ψ, ξ) and E(θ, ψ).
* :mod:`dualjax.rules` — the plain / SG / EMA teacher rules (optax-style pure functions).
* :mod:`dualjax.dynamics` — running a rule: discrete steps and continuous flows.
* :mod:`dualjax.integrability` — the Schwarz test of Prop 3.2.
* :mod:`dualjax.linear` — the linear case of §4 (model, spheres, equilibria, stability, Monte Carlo).
* :mod:`dualjax.vjepa` — the ViT / V-JEPA trainer.
* :mod:`dualjax.collapse`, :mod:`dualjax.diagnosis` — is a run collapsing? Rank metrics of features,
  the flag rule, ``dualjax diagnose``.
"""

__version__ = "0.1.0"
