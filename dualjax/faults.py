"""Fault checks: stop a run at the first non-finite loss, gradient or parameter.

A NaN in a training run usually shows up in the loss or the gradients a step before it poisons
the parameters. The check is split so that the host never waits for the step it just dispatched:

* inside the jitted step, :func:`fault_flags` folds the step into one int32 bit mask
  (bit 0: loss, bit 1: gradients, bit 2: parameters non-finite), returned with the metrics;
* on the host, one step late, :func:`raise_on_flags` turns a non-zero mask into a
  :class:`NonFiniteError` naming the step and the quantities, e.g.
  ``non-finite F (loss), gradients at step 17``. The caller (the V-JEPA trainer) then stops
  without logging or saving that step, so the last checkpoint on disk is the last good one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dualjax.typing import PyTree

FAULT_NAMES = ("F (loss)", "gradients", "parameters")  # bits 0, 1, 2 of a fault mask


class NonFiniteError(FloatingPointError):
    """A loss, gradient or parameter became NaN or ±inf.

    ``step`` is the step at which it was seen and ``names`` the non-finite quantities.
    """

    def __init__(self, step: int | None, names: list[str]):
        self.step = step
        self.names = list(names)
        where = f" at step {step}" if step is not None else ""
        shown = ", ".join(self.names[:8]) + (f" (and {len(self.names) - 8} more)" if len(self.names) > 8 else "")
        super().__init__(f"non-finite {shown}{where}")


def all_finite(tree: PyTree) -> jax.Array:
    """In-``jit`` check: a scalar boolean, True iff every floating-point leaf of ``tree`` is finite
    (integer leaves are never non-finite)."""
    leaves = [leaf for leaf in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    if not leaves:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


def fault_flags(loss: jax.Array, grads: PyTree, params: PyTree) -> jax.Array:
    """In-``jit``: the int32 mask ``1·[loss non-finite] + 2·[grads non-finite] + 4·[params
    non-finite]`` of one step (bit i names ``FAULT_NAMES[i]``)."""
    return (jnp.where(jnp.isfinite(loss), 0, 1) + jnp.where(all_finite(grads), 0, 2)
            + jnp.where(all_finite(params), 0, 4)).astype(jnp.int32)


def raise_on_flags(step: int, flags) -> None:
    """Raise :class:`NonFiniteError` naming ``step`` and the quantities set in the mask ``flags``
    (from :func:`fault_flags`); nothing if it is 0. Reading the mask synchronizes on it."""
    bits = int(flags)
    if bits:
        raise NonFiniteError(step, [name for i, name in enumerate(FAULT_NAMES) if bits >> i & 1])
