"""Fault checks: stop a run at the first non-finite loss, gradient or parameter.

A NaN in a training run usually shows up in the loss or the gradient norm a step before it
poisons the parameters. :func:`check_finite` looks at the logged metrics (and, where asked, the
whole train state) on the host and raises :class:`NonFiniteError` naming the step and every
offending quantity, e.g. ``non-finite grad_norm at step 17``. The caller (the resumable loop,
the V-JEPA trainer) then stops without saving the bad state, so the last checkpoint on disk is
the last good one.

Quantities are named by their pytree key path: a metric ``"F"`` is ``F``; a leaf of a state
checked under the name ``"state"`` is e.g. ``state.theta[0]``. :func:`all_finite` is the
in-``jit`` variant (one boolean for a whole pytree) for callers that want a single device flag.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


class NonFiniteError(FloatingPointError):
    """A loss, gradient or parameter became NaN or ±inf.

    ``step`` is the step at which it was seen and ``names`` the key paths of the non-finite
    quantities, in pytree order.
    """

    def __init__(self, step: int | None, names: list[str]):
        self.step = step
        self.names = list(names)
        where = f" at step {step}" if step is not None else ""
        shown = ", ".join(self.names[:8]) + (f" (and {len(self.names) - 8} more)" if len(self.names) > 8 else "")
        super().__init__(f"non-finite {shown}{where}")


def _path_name(prefix: str, path) -> str:
    name = jax.tree_util.keystr(path, simple=True, separator=".")
    if prefix and name:
        return f"{prefix}.{name}"
    return prefix or name or "value"


def _is_float(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
        return isinstance(leaf, float)
    return jnp.issubdtype(dtype, jnp.inexact)


@jax.jit
def _finite_flags(leaves: list) -> jax.Array:
    # One device->host transfer for the whole tree instead of one per leaf.
    return jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])


def nonfinite_names(tree: PyTree, name: str = "") -> list[str]:
    """Key paths of the floating-point leaves of ``tree`` that contain a NaN or ±inf."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    flat = [(path, leaf) for path, leaf in flat if _is_float(leaf)]
    if not flat:
        return []
    ok = [True] * len(flat)
    dev = [i for i, (_, leaf) in enumerate(flat) if isinstance(leaf, jax.Array)]
    for i, (_, leaf) in enumerate(flat):
        if not isinstance(leaf, jax.Array):
            ok[i] = bool(np.all(np.isfinite(np.asarray(leaf))))
    if dev:
        for i, flag in zip(dev, np.asarray(_finite_flags([flat[i][1] for i in dev]))):
            ok[i] = bool(flag)
    return [_path_name(name, path) for (path, _), good in zip(flat, ok) if not good]


def check_finite(tree: PyTree, step: int | None = None, *, name: str = "") -> None:
    """Raise :class:`NonFiniteError` if any floating-point leaf of ``tree`` is non-finite.

    ``tree`` is a metrics dict (``{"F": ..., "grad_norm": ...}``) or any pytree (a train
    state, gradients); ``name`` prefixes the reported key paths. Integer leaves are ignored.
    Runs on the host (it synchronizes once); call it outside ``jit``.
    """
    names = nonfinite_names(tree, name)
    if names:
        raise NonFiniteError(None if step is None else int(step), names)


def all_finite(tree: PyTree) -> jax.Array:
    """In-``jit`` check: a scalar boolean, True iff every floating-point leaf is finite."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(tree) if _is_float(leaf)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))
