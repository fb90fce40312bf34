"""Is a run collapsing? Spectral collapse metrics of feature batches, and the rule that flags it.

The paper separates two things a falling-then-rising loss can mean:

* **E rising is not collapse.** Under SG and EMA the training signal is not ∇E, so E(θ_t, ψ_t)
  may rise while the run converges to a non-trivial equilibrium (Prop 3.1).
* **A rank drop is.** In the linear model the equilibria are A = U W with S = AᵀA of rank
  r ≤ m (Prop 4.5, Cor 4.6): r = 0 is complete collapse (plain gradient flow always ends there,
  Lemma 4.3), 0 < r < m partial collapse. Rank is what separates the two, so it is what we measure.

For a feature matrix Z ∈ ℝ^{N×D} (rows: samples or tokens) with singular values σ₁ ≥ … ≥ σ_q:

    effective rank  (RankMe)  exp(−Σ_k p_k log p_k),  p_k = σ_k / Σ_j σ_j        (= k for k equal σ's)
    numerical rank            #{k : σ_k > max(atol, rtol σ₁)}
    covariance spectrum       eigenvalues of (1/N) Σ_i (z_i − z̄)(z_i − z̄)ᵀ, largest first
    token std  (pstd)         mean_{b,d} sqrt(var_k z_{bkd} + 10⁻⁴)   (the reference's ``reg_fn``)
    mean cosine               mean_i ⟨a_i, b_i⟩ / (‖a_i‖ ‖b_i‖)

Every function here is a pure jnp function of arrays (jit-, vmap- and shard-safe): the V-JEPA
step calls :func:`feature_metrics` on the features its forward pass already computed.

**The collapse rule** (:class:`Rule`, :func:`check`). A logged step is flagged when

    rank_teacher < rank_fraction · rank_teacher(first logged step)    (default 0.2)
    or   std_target < std_floor                                       (default 0.1)

rank_teacher is the effective rank of the layer-normed teacher targets LN(f_ξ(x)) over all
tokens of the batch, std_target their token std. The targets carry unit energy per channel, so
a std of 0.1 means about 1 % of it still differs between the tokens of a clip: predicting one
vector per clip then already comes within 0.1 per channel. The rule watches the teacher because
constant targets are what make the objective trivial; under SG and plain ξ = θ, under EMA the
teacher follows the student with a lag. Measured on the tiny preset over 300 steps
(docs/collapse.md): teacher rank 60 → 3.2 under plain, 60 → 5.5 under SG at lr 10⁻³ (both
flagged), 60 → 22 under SG at lr 3·10⁻⁴ (not flagged), about 60 throughout under EMA.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

TOP_K = 4  # covariance eigenvalues logged per feature set
PSTD_EPS = 1e-4  # the reference's sqrt(var + 1e-4)


# --------------------------------------------------------------------------- spectra

def rows(z: jax.Array) -> jax.Array:
    """Features (..., D) as a matrix (N, D): every leading index is a row (sample or token)."""
    return jnp.reshape(z, (-1, z.shape[-1]))


def _gram(Z_NxD: jax.Array) -> jax.Array:
    """ZᵀZ or ZZᵀ, whichever is smaller: the same non-zero eigenvalues σ_k²."""
    return Z_NxD.T @ Z_NxD if Z_NxD.shape[0] >= Z_NxD.shape[1] else Z_NxD @ Z_NxD.T


def singular_values(z: jax.Array) -> jax.Array:
    """σ₁ ≥ … ≥ σ_q of ``rows(z)`` (q = min(N, D)) as square roots of the Gram matrix's eigenvalues.

    One q × q symmetric eigenproblem after a matmul: far cheaper than an SVD of the N × D matrix on
    any device, and accurate to about √ε σ₁ (3·10⁻⁴ σ₁ in float32, 10⁻⁸ σ₁ in float64): the values
    below that are rounding noise. That moves the effective rank of collapsed float32 features
    (σ₁ ≫ the rest) by under 1 %, and that of exactly rank-k float64 features by ~10⁻⁶
    (tests/test_collapse.py). :func:`numerical_rank` needs the small values and uses an SVD."""
    w = jnp.linalg.eigvalsh(_gram(rows(z)))[::-1]
    return jnp.sqrt(jnp.clip(w, 0, None))


def spectrum_rank(s: jax.Array) -> jax.Array:
    """exp of the entropy of p = s / Σ s (RankMe, Garrido et al. 2023), over the last axis.

    k equal non-zero values give exactly k; it is invariant to scaling s, and 0 for s = 0."""
    s = jnp.abs(s)
    total = jnp.sum(s, axis=-1, keepdims=True)
    p = s / jnp.where(total > 0, total, 1)
    H = jnp.sum(jax.scipy.special.entr(p), axis=-1)
    return jnp.where(total[..., 0] > 0, jnp.exp(H), 0.0)


def effective_rank(z: jax.Array) -> jax.Array:
    """RankMe effective rank of the features ``z`` (..., D): :func:`spectrum_rank` of their singular
    values. Invariant to rotations of feature space (Z ↦ ZQ) and of the sample space (Z ↦ PZ)."""
    return spectrum_rank(singular_values(z))


def numerical_rank(a: jax.Array, *, rtol: float = 1e-6, atol: float = 1e-6) -> jax.Array:
    """#{k : σ_k(a) > max(atol, rtol σ₁)}: the rank of a matrix up to rounding (int32 array; SVD).

    For the linear model's encoder A (n × m) this is rank S = rank AᵀA, the r of Prop 4.5 that
    classifies an equilibrium: 0 the origin (complete collapse), 0 < r < m partial collapse, m full
    rank. ``atol`` keeps a point converging to the origin at rank 0; for features of arbitrary
    scale pass ``atol=0``."""
    s = jnp.linalg.svd(rows(a), compute_uv=False)
    return jnp.sum(s > jnp.maximum(atol, rtol * jnp.max(s, initial=0.0))).astype(jnp.int32)


def covariance_top(z: jax.Array, k: int = TOP_K, real: jax.Array | None = None) -> jax.Array:
    """The k largest eigenvalues of the covariance (1/N) Σ (z_i − z̄)(z_i − z̄)ᵀ (zeros past its rank),
    over the rows i with ``real`` (same leading shape as z; None: all rows)."""
    Z = rows(z)
    w = jnp.ones(Z.shape[0], Z.dtype) if real is None else jnp.reshape(real, (-1,)).astype(Z.dtype)
    n = jnp.maximum(jnp.sum(w), 1)
    Zc = (Z - jnp.sum(w[:, None] * Z, axis=0) / n) * w[:, None]  # padded rows: zero, no contribution
    ev = jnp.linalg.eigvalsh(_gram(Zc))[::-1] / n
    return jnp.pad(jnp.clip(ev, 0, None), (0, max(0, k - ev.shape[0])))[:k]


def token_std(z_BxKxD: jax.Array, real_BxK: jax.Array | None = None) -> jax.Array:
    """The reference's pstd: mean over clips b and channels d of sqrt(var_k z_{bkd} + 10⁻⁴), the
    spread of the tokens k of one clip (a constant-per-clip output gives 0.01); with ``real_BxK``
    the variance is over each clip's real tokens."""
    if real_BxK is None:
        return jnp.mean(jnp.sqrt(jnp.var(z_BxKxD, axis=-2) + PSTD_EPS))
    w = real_BxK.astype(z_BxKxD.dtype)[..., None]
    n = jnp.maximum(jnp.sum(w, axis=-2), 1)
    mean = jnp.sum(w * z_BxKxD, axis=-2) / n
    var = jnp.sum(w * (z_BxKxD - mean[..., None, :]) ** 2, axis=-2) / n
    return jnp.mean(jnp.sqrt(var + PSTD_EPS))


def mean_cosine(a: jax.Array, b: jax.Array, eps: float = 1e-12, real: jax.Array | None = None) -> jax.Array:
    """mean_i cos(a_i, b_i) over the rows of two feature arrays of one shape (..., D) (the rows
    with ``real`` where given)."""
    dot = jnp.sum(a * b, axis=-1)
    norms = jnp.linalg.norm(a, axis=-1) * jnp.linalg.norm(b, axis=-1)
    cos = dot / jnp.maximum(norms, eps)
    if real is None:
        return jnp.mean(cos)
    w = real.astype(cos.dtype)
    return jnp.sum(w * cos) / jnp.maximum(jnp.sum(w), 1)


def feature_metrics(student: Sequence[jax.Array], targets: jax.Array, predictions: Sequence[jax.Array],
                    teacher_at_student: Sequence[jax.Array], student_real: Sequence | None = None,
                    predictions_real: Sequence | None = None) -> dict[str, jax.Array]:
    """The collapse metrics of one V-JEPA batch, from the features of the step's forward pass.

    ``student``: f_θ(x_{c_i}) per mask generator i, (B, C_i, D); ``targets``: LN(f_ξ(x)), (B, N, D);
    ``predictions``: g_ψ(…) per generator, (B, T_i, D); ``teacher_at_student``: f_ξ(x) at the
    context positions c_i (before LN), like ``student``. Rows of all generators are pooled.
    ``student_real`` / ``predictions_real``: per generator a (B, C_i) / (B, T_i) bool mask of the
    real entries of padded index lists, or None (all real); a padded row enters no metric.

    Returns ``rank_student``, ``rank_teacher``, ``rank_pred`` (effective ranks), ``cov_top_student``,
    ``cov_top_teacher`` (TOP_K covariance eigenvalues), ``std_target``, ``std_pred`` (token std),
    ``cos_student_teacher``."""
    student, predictions, teacher_at_student = ([x.astype(jnp.float32) for x in xs]  # bf16 compute
                                                 for xs in (student, predictions, teacher_at_student))
    z_real = _masks(student, student_real)
    u_real = _masks(predictions, predictions_real)
    # a zero row adds nothing to the Gram matrix: the ranks of the real rows exactly
    z = jnp.concatenate([rows(x) * jnp.reshape(r, (-1, 1)) for x, r in zip(student, z_real)])
    u = jnp.concatenate([rows(x) * jnp.reshape(r, (-1, 1)) for x, r in zip(predictions, u_real)])
    z_w = jnp.concatenate([jnp.reshape(r, (-1,)) for r in z_real])
    h = targets.astype(jnp.float32)
    return {
        "rank_student": effective_rank(z),
        "rank_teacher": effective_rank(h),
        "rank_pred": effective_rank(u),
        "cov_top_student": covariance_top(z, real=z_w),
        "cov_top_teacher": covariance_top(h),
        "std_target": token_std(h),
        "std_pred": jnp.mean(jnp.stack([token_std(x, r) for x, r in zip(predictions, u_real)])),
        "cos_student_teacher": jnp.mean(jnp.stack([mean_cosine(a, b, real=r)
                                                   for a, b, r in zip(student, teacher_at_student, z_real)])),
    }


def _masks(xs: Sequence[jax.Array], masks: Sequence | None) -> list[jax.Array]:
    """Per feature array (B, K, D) its (B, K) real-entry mask (all True where None is given)."""
    masks = list(masks or ()) + [None] * (len(xs) - len(masks or ()))
    return [jnp.ones(x.shape[:-1], bool) if m is None else m for x, m in zip(xs, masks)]


# --------------------------------------------------------------------------- the flag

class Rule(NamedTuple):
    """The collapse rule of the module doc: teacher rank below ``rank_fraction`` of its value at the
    first logged step, or token std of the targets below ``std_floor``."""

    rank_fraction: float = 0.2
    std_floor: float = 0.1


def reference(records: Sequence[dict]) -> float | None:
    """The teacher rank the rule compares with: that of the first record carrying one (None if none)."""
    for r in records:
        if r.get("rank_teacher") is not None:
            return float(r["rank_teacher"])
    return None


def check(record: dict, ref: float | None, rule: Rule = Rule()) -> list[str]:
    """Why ``record`` counts as collapsed under ``rule`` (an empty list: it does not)."""
    why = []
    rank, std = record.get("rank_teacher"), record.get("std_target")
    if rank is not None and ref and rank < rule.rank_fraction * ref:
        why.append(f"teacher rank {rank:.1f} < {rule.rank_fraction:g} x {ref:.1f} (its first value)")
    if std is not None and std < rule.std_floor:
        why.append(f"target std {std:.3f} < {rule.std_floor:g}")
    return why


def host(value) -> float | list[float]:
    """A metric as JSON: a float, or a list of floats for the covariance spectra."""
    a = np.asarray(value)
    return float(a) if a.ndim == 0 else [float(x) for x in a.ravel()]
