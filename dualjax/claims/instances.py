"""The random linear instances the equilibrium claims share (Prop 4.5, Prop 4.10).

m = 2, n = 4, λ = 0.05. Instance ``t`` of data seed ``s`` has Gaussian moments (:func:`dualjax.linear.model.random_moments`,
``kind="gauss"``) from the key ``PRNGKey(1000 s + t)``, so the two claims measure the same data.
"""

from __future__ import annotations

from typing import Iterator

import jax

from dualjax.linear import equilibria, model

M, N, LAM = 2, 4, 0.05


def gauss_instances(data_seed: int, count: int, m: int = M, lam: float = LAM, n: int = N,
                    **enumerate_kw) -> Iterator[tuple[int, model.Moments, equilibria.Enumeration]]:
    """``(t, moments, enumeration)`` for t = 0 … count − 1: the instance and all its equilibria by
    :func:`dualjax.linear.equilibria.enumerate_equilibria` (``enumerate_kw``: method, starts, …).
    Call it under ``jax.enable_x64(True)``."""
    for t in range(count):
        mom = model.random_moments(jax.random.PRNGKey(data_seed * 1000 + t), m, kind="gauss")
        yield t, mom, equilibria.enumerate_equilibria(mom, lam, n=n, **enumerate_kw)
