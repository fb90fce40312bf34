"""Non-finite checks: the in-jit fault mask of a step names exactly the poisoned quantities, and the
host-side check raises a named error with the step. The trainer's path (a NaN injected into a run
stops it and keeps the last good checkpoint) is tests/vjepa/test_scale.py."""

from __future__ import annotations

import itertools
import re

import jax
import jax.numpy as jnp
import pytest

from dualjax import faults


def test_all_finite_inside_jit():
    f = jax.jit(faults.all_finite)
    assert bool(f({"a": jnp.ones(2), "n": jnp.arange(3)}))  # integer leaves are never non-finite
    assert not bool(f({"a": jnp.ones(2).at[0].set(-jnp.inf)}))
    assert not bool(f([jnp.zeros(3), {"w": jnp.ones((2, 2)).at[1, 1].set(jnp.nan)}]))
    assert bool(f({"count": jnp.arange(2)}))  # no floating-point leaf at all


@pytest.mark.float32
@pytest.mark.parametrize("bad", [c for r in range(4) for c in itertools.combinations(range(3), r)])
def test_fault_mask_has_exactly_the_bits_of_the_poisoned_quantities(bad):
    # loss, gradients, parameters; a NaN in entry i of `bad` must set bit i and only it
    parts = [jnp.asarray(0.5), {"a": jnp.ones(3), "b": jnp.ones((2, 2))}, (jnp.ones(4), jnp.arange(3))]
    poison = [lambda x: x * jnp.nan,
              lambda g: {**g, "b": g["b"].at[0, 1].set(jnp.inf)},
              lambda p: (p[0].at[2].set(jnp.nan), p[1])]
    for i in bad:
        parts[i] = poison[i](parts[i])
    flags = jax.jit(faults.fault_flags)(*parts)
    assert flags.dtype == jnp.int32 and int(flags) == sum(1 << i for i in bad)
    if not bad:
        faults.raise_on_flags(5, flags)  # finite: no error
        return
    want = ", ".join(faults.FAULT_NAMES[i] for i in bad)
    with pytest.raises(faults.NonFiniteError, match=f"^{re.escape(f'non-finite {want} at step 5')}$") as info:
        faults.raise_on_flags(5, flags)
    assert info.value.step == 5 and info.value.names == [faults.FAULT_NAMES[i] for i in bad]


def test_error_message_lists_at_most_eight_names():
    err = faults.NonFiniteError(None, [f"w{i}" for i in range(10)])
    assert str(err) == "non-finite w0, w1, w2, w3, w4, w5, w6, w7 (and 2 more)"
    assert isinstance(err, FloatingPointError) and err.step is None and len(err.names) == 10
