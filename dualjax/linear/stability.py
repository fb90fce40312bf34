"""Prop 4.10 — Jacobian spectra and stability of the equilibria of the linear model, for any rule.

:func:`analyze` is :mod:`dualjax.spectrum` (the spectrum of any rule's expected field at any
point of any model) on the linear model at the equilibrium component of a Gram matrix S, with the
O(n) orbit's exact tangent space and the symmetry reduction below; the closed-form Jacobians
(:func:`sg_jacobian`, :func:`ema_jacobian`) are kept as the reference it is checked against.

Continuous fields (Lemma 4.1, MATH.md §1): SG on z = (A, B),

    dA/dt = −(BᵀR + λA),  dB/dt = −(RAᵀ + λB),  R = BAρ − Aτ,

and EMA on (A, B, C) with R = BAρ − Cτ and dC/dt = k(A − C). Their Jacobians J are taken with
``jax.jacfwd`` on the flattened parameters (checked against central differences).

Symmetry (:mod:`dualjax.linear.orbits`). Both fields are equivariant under O(n), so each
equilibrium lies on an orbit whose tangent space T (dim nr − r(r+1)/2 at rank r) sits in ker J,
and the *transversal* spectrum spec(NᵀJN), N ⟂ T, decides stability of the orbit as a set:

* ``stable``     — every transversal eigenvalue has Re < −tol (the component 𝓔_k attracts);
* ``saddle``     — some have Re > tol (``n_unstable`` of them);
* ``degenerate`` — none unstable but some |Re| ≤ tol (linearisation inconclusive).

Reduction (:func:`analyze`, ``method="reduced"``). Rotate so that A = [W; 0] (W ∈ ℝ^{r×m}); then
B = [[B₁₁, 0], [0, 0]] and the stabiliser O(n − r) splits the tangent space into isotypic parts:
(A₁, B₁₁, C₁) (invariant), (n − r) identical copies of (A₂-row, B₁₂-column, B₂₁-row, C₂-row)
(standard representation), and the (n − r)² entries of B₂₂, on which J = −λ exactly. So

    spec J = spec J_inv ∪ (n − r) × spec J_std ∪ (n − r)² × {−λ},

with J_inv, J_std read off the Jacobian of the (r+1)-dimensional model. n = 64, m = 8 (4,608 SG
parameters) then costs a 128×128 and a 24×24 eigenproblem instead of a 4,608×4,608 one; the dense
method is kept and the two are checked against each other.

Discrete time. SG: z⁺ = z + η v(z) has Jacobian I + ηJ, stable (transversally) iff
η < η_max = min_{μ ≠ 0} 2|Re μ|/|μ|². EMA: the map (A, B, C) ↦ (A⁺, B⁺, αC + (1 − α)A⁺) has the
Jacobian T of MATH.md §5, computed here by ``jacfwd`` of the map itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dualjax import checks, rules, spectrum
from dualjax.linear import equilibria as eqm
from dualjax.linear import model
from dualjax.linear.orbits import (  # noqa: F401  (re-exported: the O(n) orbits)
    orbit_dimension,
    orbit_generators,
    orbit_tangent,
    transversal_spectrum,
)
from dualjax.spectrum import DEGENERATE, SADDLE, STABLE, classify  # noqa: F401  (re-exported)


_x64 = checks.float64


# --------------------------------------------------------------------------- Jacobians

def _moms(mom):
    return jnp.asarray(mom.rho, jnp.float64), jnp.asarray(mom.tau, jnp.float64)


@jax.jit
def _sg_jac(A, B, rho, tau, lam):
    z, unravel = ravel_pytree((A, B))

    def v(z):
        A_, B_ = unravel(z)
        dA, dB = model.sg_field(A_, B_, model.Moments(rho, tau, rho), lam)
        return ravel_pytree((dA, dB))[0]

    return jax.jacfwd(v)(z)


@jax.jit
def _ema_jac(A, B, C, rho, tau, lam, k):
    z, unravel = ravel_pytree((A, B, C))

    def v(z):
        A_, B_, C_ = unravel(z)
        return ravel_pytree(model.ema_field(A_, B_, C_, model.Moments(rho, tau, rho), lam, k))[0]

    return jax.jacfwd(v)(z)


@jax.jit
def _ema_map_jac(A, B, C, rho, tau, lam, eta, alpha):
    z, unravel = ravel_pytree((A, B, C))

    def step(z):
        A_, B_, C_ = unravel(z)
        dA, dB, _ = model.ema_field(A_, B_, C_, model.Moments(rho, tau, rho), lam, 0.0)
        A1 = A_ + eta * dA
        return ravel_pytree((A1, B_ + eta * dB, alpha * C_ + (1 - alpha) * A1))[0]

    return jax.jacfwd(step)(z)


@_x64
def sg_jacobian(A, B, mom, lam) -> np.ndarray:
    """J = ∂(dA/dt, dB/dt)/∂(A, B) of the SG flow (``jax.jacfwd``), on vec(A) ⊕ vec(B) (row-major)."""
    return np.asarray(_sg_jac(jnp.asarray(A, jnp.float64), jnp.asarray(B, jnp.float64), *_moms(mom), lam))


@_x64
def ema_jacobian(A, B, C, mom, lam, k) -> np.ndarray:
    """Jacobian of the continuous EMA system on vec(A) ⊕ vec(B) ⊕ vec(C), with dC/dt = k(A − C)."""
    return np.asarray(_ema_jac(jnp.asarray(A, jnp.float64), jnp.asarray(B, jnp.float64), jnp.asarray(C, jnp.float64),
                               *_moms(mom), lam, k))


@_x64
def ema_map_jacobian(A, B, C, mom, lam, eta, alpha) -> np.ndarray:
    """Jacobian T of the discrete EMA map (A, B, C) ↦ (A⁺, B⁺, αC + (1 − α)A⁺) (MATH.md §5)."""
    return np.asarray(_ema_map_jac(jnp.asarray(A, jnp.float64), jnp.asarray(B, jnp.float64),
                                   jnp.asarray(C, jnp.float64), *_moms(mom), lam, eta, alpha))


def finite_difference_jacobian(fun, z, eps: float = 1e-6) -> np.ndarray:
    """Central differences (f(z + εe_j) − f(z − εe_j)) / 2ε, column by column (for checking jacfwd)."""
    z = np.asarray(z, float)
    cols = []
    for j in range(z.size):
        e = np.zeros_like(z)
        e[j] = eps
        cols.append((np.asarray(fun(z + e)) - np.asarray(fun(z - e))) / (2 * eps))
    return np.stack(cols, axis=1)


def flat_sg_field(mom, lam, n: int, m: int):
    """z ↦ vec of the SG field at (A, B) = unravel(z) (float64 numpy in and out)."""

    def f(z):
        with jax.enable_x64(True):
            A = jnp.asarray(z[: n * m]).reshape(n, m)
            B = jnp.asarray(z[n * m:]).reshape(n, n)
            dA, dB = model.sg_field(A, B, model.Moments(*_moms(mom), jnp.asarray(mom.rho)), lam)
            return np.concatenate([np.asarray(dA).ravel(), np.asarray(dB).ravel()])

    return f


def sg_eta_max(transversal) -> float:
    """Largest stable step of discrete SG: η_max = min over transversal μ of 2|Re μ|/|μ|² (0 if Re μ ≥ 0)."""
    mu = np.asarray(transversal)
    if mu.size == 0:
        return float("inf")
    if np.any(np.real(mu) >= 0):
        return 0.0
    return float(np.min(2 * np.abs(mu.real) / np.abs(mu) ** 2))


def sg_step_radius(transversal, eta: float) -> float:
    """Transversal spectral radius of I + ηJ: max |1 + ημ|."""
    mu = np.asarray(transversal)
    return float(np.max(np.abs(1 + eta * mu))) if mu.size else 0.0


# --------------------------------------------------------------------------- reduced (symmetry-adapted) analysis

def _reduced_point(S, mom, lam):
    """The (r+1)-dimensional model at A' = [W; 0], B' = A'τM⁻¹A'ᵀ, and the index sets of the split."""
    W = eqm.gram_factor(S)
    r, m = W.shape
    A = np.vstack([W, np.zeros((1, m))])
    B = eqm.predictor_at(A, mom, lam)
    return A, B, r


def _split(r: int, m: int, ema: bool):
    """Indices (even, odd, b22) in vec(A') ⊕ vec(B') [⊕ vec(C')] of the (r+1)-model."""
    d = r + 1
    kinds = []  # 'e' even, 'o' odd, 'z' the B'[r, r] entry
    for i in range(d):
        kinds += ["o" if i == r else "e"] * m
    for i in range(d):
        for j in range(d):
            kinds.append("z" if (i == r and j == r) else "o" if (i == r) != (j == r) else "e")
    if ema:
        for i in range(d):
            kinds += ["o" if i == r else "e"] * m
    kinds = np.asarray(kinds)
    return np.flatnonzero(kinds == "e"), np.flatnonzero(kinds == "o"), np.flatnonzero(kinds == "z")


def _block_transversal(J, T, idx):
    Jb = J[np.ix_(idx, idx)]
    Tb = T[idx] if T.shape[1] else T[idx]
    keep = np.linalg.norm(Tb, axis=0) > 1e-12 if Tb.shape[1] else np.zeros(0, bool)
    Tb = Tb[:, keep]
    if Tb.shape[1]:
        U, s, _ = np.linalg.svd(Tb, full_matrices=False)
        Tb = U[:, : int(np.sum(s > 1e-9 * s[0]))]
    return np.linalg.eigvals(Jb), transversal_spectrum(Jb, Tb), Tb.shape[1]


@dataclass
class StabilityReport:
    """Spectrum and verdict at one equilibrium component (see module doc).

    ``spectral``: the model-independent part (:class:`dualjax.spectrum.Spectrum`: rule, kind,
    n_unstable, n_zero, orbit_dim = nr − r(r+1)/2, max_real, spectrum (full, multiplicities
    expanded), transversal = spec(NᵀJN), tangent_residual = ‖J T‖ / ‖J‖, jacobian), whose fields
    read as the report's own (``report.kind``); n and the rank r of the component; ``eta_max``
    (the SG step limit); the method and its extra numbers.
    """

    n: int
    rank: int
    spectral: spectrum.Spectrum
    eta_max: float | None = None
    seconds: float = 0.0
    method: str = "reduced"
    extra: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "spectral":  # copy / pickle probe before __init__
            raise AttributeError(name)
        return getattr(self.spectral, name)

    @property
    def zeros_match_orbit(self) -> bool:
        return self.n_zero == self.orbit_dim

    def summary(self) -> dict:
        return {
            "rule": self.rule,
            "class": self.kind,
            "n_unstable": self.n_unstable,
            "n_zero": self.n_zero,
            "orbit_dim": self.orbit_dim,
            "max_real_transversal": self.max_real,
            "eta_max": self.eta_max,
            "tangent_residual": self.tangent_residual,
            **self.extra,
        }


def _moment_F(A, B, C, batch):
    """The moment-form F with λ in the batch: one function for every λ, so the jitted Jacobian
    of :func:`dualjax.spectrum.jacobian` compiles once per (rule, k, shapes)."""
    mom, lam = batch
    return model.F(A, B, C, mom, lam)


def _field_jacobian(rule, A, B, mom, lam, k):
    """J of the rule's expected field (:func:`dualjax.spectrum.jacobian`) on the moment-form F at
    (A, B[, C = A]), and the orbit's tangent basis there."""
    batch = (model.Moments(*(jnp.asarray(x, jnp.float64) for x in mom)), jnp.asarray(lam, jnp.float64))
    J = spectrum.jacobian(rule, _moment_F, jnp.asarray(A), jnp.asarray(B), batch, k=k)
    return J, orbit_tangent(A, B, A if rule.carries_teacher else None)


@_x64
def analyze(S, mom, lam, n: int, *, rule: rules.TeacherRule | None = None, k: float = 1.0, method: str = "reduced",
            zero_tol: float = 1e-7) -> StabilityReport:
    """Classify the equilibrium component with Gram matrix S at width n (Prop 4.10).

    ``rule``: any rule with an expected field (default :func:`dualjax.rules.sg`: the flow on
    (A, B); a rule that carries a teacher, e.g. EMA, flows on (A, B, C) with rate ``k``).
    ``method``: ``reduced`` (symmetry-adapted, module doc) or ``dense`` (jacfwd + eig of the full
    P×P Jacobian). Both are :func:`dualjax.spectrum.jacobian` / :func:`~dualjax.spectrum.analyze_jacobian`
    on the linear model with the orbit's exact tangent space. Returns a :class:`StabilityReport`;
    for a rule without a copy it includes the step limit η_max of z⁺ = z + ηV(z).
    """
    rule = rules.sg() if rule is None else rules.check_rule(rule)
    carries = rule.carries_teacher
    k = checks.check_positive(k, "k") if carries else None
    lam = checks.check_lambda(lam)
    checks.check_positive_int(n, "n")
    S = np.asarray(S, float)
    m = S.shape[0]
    if n <= m:
        raise ValueError(f"the linear model needs n > m, got n={n}, m={m}")
    t0 = time.perf_counter()
    extra = {}
    if method == "dense":
        A, B = eqm.equilibrium_point(S, mom, lam, n)
        r = eqm.numerical_rank(S)
        J, T = _field_jacobian(rule, A, B, mom, lam, k)
        res = spectrum.analyze_jacobian(J, tangent=T, orbit_dim=orbit_dimension(n, r), zero_tol=zero_tol,
                                        rule=rule.name)
        full, transversal, tangent_res = res.spectrum, res.transversal, res.tangent_residual
    elif method == "reduced":
        A, B, r = _reduced_point(S, mom, lam)
        J, T = _field_jacobian(rule, A, B, mom, lam, k)
        even, odd, b22 = _split(r, m, carries)
        coupling = float(np.linalg.norm(J[np.ix_(even, odd)]) + np.linalg.norm(J[np.ix_(odd, even)]))
        inv_spec, inv_tr, _ = _block_transversal(J, T, even)
        std_spec, std_tr, _ = _block_transversal(J, T, odd)
        b22_val = J[b22[0], b22[0]]
        c = n - r
        full = np.concatenate([inv_spec, np.repeat(std_spec, c), np.full(c * c, b22_val)])
        transversal = np.concatenate([inv_tr, np.repeat(std_tr, c), np.full(c * c, b22_val)])
        tangent_res = float(np.linalg.norm(J @ T) / max(np.linalg.norm(J), 1e-300))
        extra = {"block_coupling": coupling, "inv_block": int(even.size), "std_block": int(odd.size), "copies": c}
    else:
        raise ValueError(f"method must be 'reduced' or 'dense', got {method!r}")
    tol = spectrum.zero_tolerance(full, zero_tol)
    kind, n_unstable = classify(transversal, tol)
    spec = spectrum.Spectrum(rule.name, kind, n_unstable, int(np.sum(np.abs(full) <= tol)), orbit_dimension(n, r),
                             float(np.max(np.real(transversal), initial=-np.inf)), full, transversal, tangent_res, J)
    report = StabilityReport(n=n, rank=r, spectral=spec, method=method,
                             eta_max=None if carries else sg_eta_max(transversal), extra=extra)
    report.seconds = time.perf_counter() - t0
    return report


@_x64
def ema_step_radius(S, mom, lam, n: int, eta: float, alpha: float) -> float:
    """Transversal spectral radius of the discrete EMA map's Jacobian T at the component of S.

    Uses the same O(n − r) reduction as :func:`analyze` (the B₂₂ block is 1 − ηλ).
    """
    eta = checks.check_positive(eta, "eta")
    alpha = checks.check_alpha(alpha)
    A, B, r = _reduced_point(np.asarray(S, float), mom, lam)
    m = A.shape[1]
    Tm = ema_map_jacobian(A, B, A, mom, lam, eta, alpha)
    Tan = orbit_tangent(A, B, A)
    even, odd, b22 = _split(r, m, True)
    _, inv_tr, _ = _block_transversal(Tm, Tan, even)
    _, std_tr, _ = _block_transversal(Tm, Tan, odd)
    vals = np.concatenate([inv_tr, std_tr, [Tm[b22[0], b22[0]]]])
    return float(np.max(np.abs(vals)))


def ema_eta_max(S, mom, lam, n: int, alpha: float, *, eta_hi: float | None = None, iters: int = 40) -> float:
    """Largest η with transversal spectral radius of the EMA map < 1 at fixed α (bisection).

    Scans η upward by factors of 1.5 from a small value to bracket the crossing, then bisects.
    """
    eta = 1e-3 if eta_hi is None else eta_hi / 1024
    if ema_step_radius(S, mom, lam, n, eta, alpha) >= 1:
        return 0.0
    lo = eta
    hi = None
    for _ in range(80):
        eta *= 1.5
        if ema_step_radius(S, mom, lam, n, eta, alpha) >= 1:
            hi = eta
            break
        lo = eta
    if hi is None:
        return float("inf")
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if ema_step_radius(S, mom, lam, n, mid, alpha) < 1:
            lo = mid
        else:
            hi = mid
    return lo


def classify_all(enumeration, *, n: int | None = None, k: float = 1.0, method: str = "reduced",
                 rules_=None) -> list:
    """Fill ``stability`` of every equilibrium of an :class:`~dualjax.linear.equilibria.Enumeration`:
    one :class:`StabilityReport` per rule (default SG and EMA at rate ``k``), keyed by rule name;
    ``class`` is the first rule's verdict. Returns the reports, one tuple per equilibrium."""
    n = enumeration.n if n is None else n
    rules_ = (rules.sg(), rules.ema()) if rules_ is None else tuple(rules_)
    lam = enumeration.lam
    mom = enumeration_moments(enumeration)
    out = []
    for e in enumeration.equilibria:
        reports = tuple(analyze(e.S, mom, lam, n, rule=rule, k=k, method=method) for rule in rules_)
        e.stability = {"class": reports[0].kind, **{r.rule: r.summary() for r in reports}}
        out.append(reports)
    return out


def enumeration_moments(enumeration):
    """The moments an enumeration was computed for (stored on it by :func:`enumerate_equilibria`)."""
    return enumeration.moments
