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
``engines``    :class:`Engine`: one step of a rule (``rules`` autodiff, any rule; ``fast`` closed form, any m)
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

The study over general m (issue 16: which equilibrium do the rules reach for m > 1?):

==================  =============================================================================
``ensemble``        :class:`Instance`, the samplers (:data:`SAMPLERS`): random (ρ, τ, λ) and starts
``general``         :class:`GeneralConfig`, :func:`general_study`, :func:`run_instances`, the engine choice
``endpoints``       :func:`classify_endpoints`: an end point against every equilibrium, Jacobian check
``general_stats``   :func:`general_summary`: fractions per rule and per rank, with Wilson intervals
``general_figures`` outcome fractions, end points against the components, fractions against m
``general_writers`` :func:`write_general_study`: ``summary.json``, ``trials.csv``, figures
==================  =============================================================================

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
from dualjax.linear.montecarlo.endpoints import OUTCOMES as GENERAL_OUTCOMES
from dualjax.linear.montecarlo.endpoints import classify_endpoints
from dualjax.linear.montecarlo.engines import (
    ENGINES,
    ClosedForm,
    Engine,
    FastState,
    MatrixState,
    closed_form,
    fast_engine,
    general_fast_engine,
    get_engine,
    resolve_engine,
    rules_engine,
)
from dualjax.linear.montecarlo.ensemble import SAMPLERS, Instance, sample_instance, sample_instances
from dualjax.linear.montecarlo.general import (
    GENERAL_ENGINES,
    GeneralConfig,
    GeneralStudy,
    check_general_config,
    general_engine,
    general_study,
    resolve_general_engine,
    run_instances,
    run_rule,
)
from dualjax.linear.montecarlo.general_stats import general_summary
from dualjax.linear.montecarlo.general_writers import CSV_COLUMNS_M, write_general_study
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
from dualjax.linear.montecarlo.run import kernels_needed, resolve_rules, run_points, run_trials, study
from dualjax.linear.montecarlo.stats import PAPER, summarize, summary, wilson
from dualjax.linear.montecarlo.trials import Trial, sample_trial, trial_moments
from dualjax.linear.montecarlo.writers import CSV_COLUMNS, write_study, write_trials_csv

__all__ = [
    "CSV_COLUMNS", "CSV_COLUMNS_M", "GENERAL_ENGINES", "GENERAL_OUTCOMES", "GeneralConfig", "GeneralStudy",
    "Instance", "MatrixState", "SAMPLERS", "check_general_config", "classify_endpoints", "general_engine",
    "general_fast_engine", "general_study", "general_summary", "resolve_general_engine", "resolve_rules",
    "run_instances", "run_rule", "sample_instance", "sample_instances", "write_general_study",
    "DEFAULT_BLOCK", "DEFAULT_RANGES", "DIVERGED", "ENGINES", "INNER", "NOT_CONVERGED", "ORIGIN",
    "OUTCOMES", "OUTER", "PAPER", "P_DELTA_NONNEG", "ClosedForm", "Config", "Engine", "FastState",
    "PoolOps", "Slot", "Trial", "advance_slot", "check_config", "classify", "closed_form", "fast_engine",
    "finish_slot", "get_engine", "init_slot", "kernel", "kernels_needed", "make_mesh", "resolve_engine",
    "rules_engine",
    "run_points", "run_pool", "run_to_end", "run_trial", "run_trials", "sample_trial", "slot_active", "study",
    "summarize", "summary", "trial_moments", "wilson", "write_study", "write_trials_csv",
]
