"""Input validation shared by every module.

Each check raises :class:`ValueError` naming the offending value, so that bad input fails
at the call site instead of turning into a NaN twenty steps later. The checks run on
concrete (host) values; call them outside ``jit``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _concrete(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception as err:  # tracers, ragged lists, strings
        raise ValueError(f"{name} must be a concrete numeric array, got {value!r}") from err


def check_lambda(lam: Any, *, positive: bool = True, name: str = "lam") -> float:
    """λ of the regularizer Ω = λ(‖θ‖² + ‖ψ‖²)/2: finite, and > 0 where a statement needs it."""
    arr = _concrete(lam, name)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    value = float(arr)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0 (weight decay λ of Ω), got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_alpha(alpha: Any, name: str = "alpha") -> float:
    """EMA momentum α ∈ [0, 1]."""
    arr = _concrete(alpha, name)
    if arr.shape != ():
        raise ValueError(f"{name} must be a scalar, got shape {arr.shape}")
    value = float(arr)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} (EMA momentum) must lie in [0, 1], got {value}")
    return value


def check_positive(value: Any, name: str) -> float:
    arr = _concrete(value, name)
    if arr.shape != () or not math.isfinite(float(arr)) or float(arr) <= 0:
        raise ValueError(f"{name} must be a finite scalar > 0, got {value!r}")
    return float(arr)


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_psd(rho: Any, name: str = "rho", *, strict: bool = False, atol: float = 1e-10) -> np.ndarray:
    """ρ = E[x xᵀ] must be a symmetric positive semi-definite (or definite) square matrix."""
    arr = _concrete(rho, name)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries: {arr.tolist()}")
    scale = max(1.0, float(np.abs(arr).max()))
    if not np.allclose(arr, arr.T, atol=atol * scale, rtol=0):
        raise ValueError(f"{name} must be symmetric, got {arr.tolist()}")
    eigs = np.linalg.eigvalsh((arr + arr.T) / 2)
    if strict and eigs.min() <= atol * scale:
        raise ValueError(
            f"{name} must be positive definite; smallest eigenvalue {eigs.min():.3g} (matrix {arr.tolist()})"
        )
    if eigs.min() < -atol * scale:
        raise ValueError(
            f"{name} must be positive semi-definite; smallest eigenvalue {eigs.min():.3g} (matrix {arr.tolist()})"
        )
    return arr


def check_square(mat: Any, m: int, name: str) -> np.ndarray:
    arr = _concrete(mat, name)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    if arr.shape != (m, m):
        raise ValueError(f"{name} must have shape ({m}, {m}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries: {arr.tolist()}")
    return arr


def check_shape(arr: Any, shape: tuple[int, ...], name: str) -> None:
    got = tuple(np.shape(arr))
    if got != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {got}")


def float64(fn):
    """Decorator: run ``fn`` under ``jax.enable_x64(True)``. Theory checks compare residuals at
    1e-9 and below, which float32 cannot resolve."""
    import functools

    import jax

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper
