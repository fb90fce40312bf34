"""The m = 1 synthetic Monte Carlo study (paper §4, "10,000 random trials"; MATH.md §7).

One trial is a pure function of ``(key, index)``: sample ρ ~ U(0, 3], τ ~ U[−1, 1),
λ ~ U[0.01, 0.1) and an initial point (a₀, B₀); run a discrete rule (a
:class:`~dualjax.rules.TeacherRule`: SG, EMA, plain, DirectPred, yours) until the increment is
below tol, the budget runs out or the run diverges; classify the end with Prop 4.11 (``outer``
sphere S₂, ``inner`` sphere S₁, ``origin``, ``not_converged``, ``diverged``) and record whether
E rose (Prop 3.1). Millions of trials run in a pool of slots, on a mesh of devices or on the host
in a compiled CPU kernel, with results that do not depend on either.

The modules, in the order the data flows:

=============  ==================================================================================
``config``     :class:`Config`, :func:`check_config`, the paper's ranges, exact P(Δ ≥ 0)
``trials``     :class:`Trial`, :func:`sample_trial`: one trial's random data
``engines``    :class:`Engine`: one step of a rule (``rules`` autodiff, any rule; ``fast`` closed form)
``slots``      :class:`Slot`: the driver's loop per trial, :func:`classify` (Prop 4.11), :func:`run_trial`
``pool``       :class:`PoolOps` and :func:`run_pool`: the pool of slots and its driver
``xlapool``    the pool on the devices (XLA, sharded over a mesh)
``kernel``     the fast engine's step as a compiled, lane-vectorized CPU loop (numba)
``hostpool``   the pool on the host, stepped by the kernel
``run``        :func:`study`, :func:`run_trials`, :func:`run_points`: the entry points
``stats``      :func:`summarize`, :func:`summary`, :func:`wilson`: fractions with intervals
``figures``    trajectories, basins, fractions, energy (matplotlib)
``writers``    :func:`write_study`: ``summary.json``, ``trials.csv`` and the figures
=============  ==================================================================================

``from dualjax.linear import montecarlo as mc`` gives the names below (``mc.study``,
``mc.Config``, ...); the figures are ``from dualjax.linear.montecarlo import figures``.
"""

from dualjax.linear.montecarlo import kernel
from dualjax.linear.montecarlo.config import (
    DEFAULT_RANGES,
    P_DELTA_NONNEG,
    Config,
    check_config,
)
from dualjax.linear.montecarlo.engines import (
    ENGINES,
    ClosedForm,
    Engine,
    FastState,
    closed_form,
    fast_engine,
    get_engine,
    resolve_engine,
    rules_engine,
)
from dualjax.linear.montecarlo.pool import DEFAULT_BLOCK, PoolOps, make_mesh, run_pool
from dualjax.linear.montecarlo.slots import (
    DIVERGED,
    INNER,
    NOT_CONVERGED,
    ORIGIN,
    OUTCOMES,
    OUTER,
    Slot,
    advance_slot,
    classify,
    finish_slot,
    init_slot,
    run_to_end,
    run_trial,
    slot_active,
)
from dualjax.linear.montecarlo.run import kernels_needed, run_points, run_trials, study
from dualjax.linear.montecarlo.stats import PAPER, summarize, summary, wilson
from dualjax.linear.montecarlo.trials import Trial, sample_trial, trial_moments
from dualjax.linear.montecarlo.writers import CSV_COLUMNS, write_study, write_trials_csv

__all__ = [
    "CSV_COLUMNS", "DEFAULT_BLOCK", "DEFAULT_RANGES", "DIVERGED", "ENGINES", "INNER", "NOT_CONVERGED", "ORIGIN",
    "OUTCOMES", "OUTER", "PAPER", "P_DELTA_NONNEG", "ClosedForm", "Config", "Engine", "FastState",
    "PoolOps", "Slot", "Trial", "advance_slot", "check_config", "classify", "closed_form", "fast_engine",
    "finish_slot", "get_engine", "init_slot", "kernel", "kernels_needed", "make_mesh", "resolve_engine",
    "rules_engine",
    "run_points", "run_pool", "run_to_end", "run_trial", "run_trials", "sample_trial", "slot_active", "study",
    "summarize", "summary", "trial_moments", "wilson", "write_study", "write_trials_csv",
]
