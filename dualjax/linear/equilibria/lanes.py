"""Lane-wise numerics for the batched solvers: tiny-matrix forms of the equilibrium equations and a
driver that runs independent per-lane iterations (paths, Newton starts) over 10⁴–10⁵ lanes.

Vmapped over many lanes, XLA:CPU runs a batch of 2×2 or 3×3 matrix products or LAPACK solves as one
small library call per lane (about 7× slower than plain arithmetic at m = 2). :func:`small_matmul`,
:func:`small_solve`, :func:`prop45_residual` and :func:`rank_residual_small` are the same formulas as
:func:`~dualjax.linear.equilibria.system.residual_vec` and
:func:`~dualjax.linear.equilibria.newton.rank_residual`, written as broadcast multiply-adds and an
unrolled elimination, which XLA fuses into loops over the lanes (tested against them).

:func:`iterate_lanes` advances only the live lanes, in chunks of one size (:data:`CHUNK`), so slow
paths do not hold the batch and each kernel compiles once; :func:`chunked` maps a jitted function
over lanes the same way.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

# Lanes (paths or starts) per XLA call, one size for everything (one compilation per kernel).
CHUNK = 512


# --------------------------------------------------------------------------- tiny matrices, lane-wise

def small_matmul(a, b):
    """a @ b for small matrices as a broadcast multiply-add (fuses under vmap)."""
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def small_solve(A, b):
    """A⁻¹ b for one small N×N system (b of shape (N,) or (N, k)) by Gaussian elimination with
    partial pivoting, unrolled over the static N: elementwise arithmetic under vmap."""
    N = A.shape[-1]
    vector = b.ndim == 1
    M = jnp.concatenate([A, b[:, None] if vector else b], axis=1)
    rows = jnp.arange(N)
    for k in range(N):
        p = k + jnp.argmax(jnp.abs(M[k:, k]))
        M = M[jnp.where(rows == k, p, jnp.where(rows == p, k, rows))]  # swap rows k and p
        M = M.at[k + 1:].add(-(M[k + 1:, k] / M[k, k])[:, None] * M[k])
    x = [None] * N
    for k in reversed(range(N)):
        x[k] = (M[k, N:] - sum(M[k, j] * x[j] for j in range(k + 1, N))) / M[k, k]
    x = jnp.stack(x)
    return x[:, 0] if vector else x


def sym(x, m: int):
    """:func:`~dualjax.linear.equilibria.system.sym_from_vec` by static indexing."""
    pos = {ij: k for k, ij in enumerate(zip(*np.triu_indices(m)))}
    return jnp.stack([jnp.stack([x[pos[min(i, j), max(i, j)]] for j in range(m)]) for i in range(m)])


def prop45_residual(x, rho, tau, lam, m: int):
    """:func:`~dualjax.linear.equilibria.system.residual_vec` (the upper triangle of
    (ρS + λI)(Sρ + λI) − τᵀSτ at S = sym(x)) in the lane-wise form."""
    S, eye = sym(x, m), jnp.eye(m)
    R = small_matmul(small_matmul(rho, S) + lam * eye, small_matmul(S, rho) + lam * eye) \
        - small_matmul(small_matmul(tau.T, S), tau)
    return jnp.stack([R[i, j] for i, j in zip(*np.triu_indices(m))])


def rank_residual_small(w, rho, tau, lam, rank: int):
    """:func:`~dualjax.linear.equilibria.newton.rank_residual` (equation (ii) in W, S = WᵀW) in the
    lane-wise form: Φ(W) = W M − W (ρS + λI)⁻¹ τᵀ S τ."""
    m = rho.shape[0]
    W, eye = w.reshape(rank, m), jnp.eye(m)
    S = small_matmul(W.T, W)
    rhs = small_solve(small_matmul(rho, S) + lam * eye, small_matmul(small_matmul(tau.T, S), tau))
    return (small_matmul(W, small_matmul(S, rho) + lam * eye) - small_matmul(W, rhs)).ravel()


# --------------------------------------------------------------------------- lanes


def _lanes_sharding() -> jax.sharding.NamedSharding:
    devices = jax.devices()
    mesh = jax.make_mesh((len(devices),), ("lanes",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("lanes"))


def chunked(fn, arrays):
    """``fn`` applied to the lanes of ``arrays`` (a pytree of host arrays with a leading lane axis, at
    least one lane) in chunks of :data:`CHUNK` (the last padded by repeating lanes): one compilation
    for any lane count."""
    L = jax.tree_util.tree_leaves(arrays)[0].shape[0]
    outs = []
    for lo in range(0, L, CHUNK):
        sel = np.arange(lo, min(L, lo + CHUNK))
        out = jax.device_get(fn(jax.tree_util.tree_map(lambda a: np.asarray(a)[np.resize(sel, CHUNK)], arrays)))
        outs.append(jax.tree_util.tree_map(lambda o: o[: sel.size], out))
    return jax.tree_util.tree_map(lambda *o: np.concatenate(o), *outs)


def iterate_lanes(advance, state, active: Callable, *, max_rounds: int):
    """Run independent per-lane iterations to completion, a few steps at a time on the live lanes only.

    ``state`` is a pytree of host arrays with a leading lane axis; ``advance`` (jitted, vmapped; see
    :func:`block_fn`) moves :data:`CHUNK` lanes by a fixed number of steps, leaving finished lanes unchanged;
    ``active(state) -> (L,) bool`` says which lanes still run. Each round gathers the live lanes
    into chunks (the last padded by repeating lanes) and scatters the results back, so a few slow
    paths do not hold the whole batch: the work is about the sum of the lanes' step counts, not the
    batch size times the slowest one. One chunk size: compiling the tracker costs more than the
    idle lanes of the last chunk.
    """
    state = jax.tree_util.tree_map(np.array, state)
    for _ in range(max_rounds):
        live = np.flatnonzero(active(state))
        if live.size == 0:
            break
        for lo in range(0, live.size, CHUNK):
            sel = live[lo:lo + CHUNK]
            out = advance(jax.tree_util.tree_map(lambda a: a[np.resize(sel, CHUNK)], state))
            for a, o in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(jax.device_get(out))):
                a[sel] = o[: sel.size]
    return state


def block_fn(lane_step, block: int):
    """``block`` steps of ``lane_step`` (which freezes finished lanes), vmapped, jitted, sharded over the lanes."""
    sharding = _lanes_sharding()
    run = jax.vmap(lambda c: jax.lax.fori_loop(0, block, lambda _, c: lane_step(c), c))
    return jax.jit(run, in_shardings=sharding, out_shardings=sharding)


def freeze(active, new, old):
    """``new`` where ``active``, else ``old`` (leaf by leaf): a finished lane stays as it was."""
    return jax.tree_util.tree_map(lambda x, y: jnp.where(active, x, y), new, old)
