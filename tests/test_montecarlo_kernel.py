"""The compiled CPU kernel of the Monte Carlo pool (dualjax.linear.montecarlo.kernel) and its host
pool (hostpool) against the XLA fast engine it re-implements, and the engine selection rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import rules
from dualjax.linear import montecarlo as mc
from dualjax.linear.montecarlo import hostpool, kernel

pytestmark = pytest.mark.skipif(not kernel.AVAILABLE, reason="numba is not importable")

# The default study with a shorter budget: every outcome but 'inner' occurs, step counts vary
# from tens to the budget, so the pool refills and drains many times.
CFG = mc.Config(max_steps=15_000)
RULES = {"sg": rules.sg(), "ema": rules.ema(0.99)}


@pytest.mark.parametrize("rule", ["sg", "ema"])
def test_kernel_pool_matches_the_xla_engine_trial_for_trial(rule):
    key = jax.random.PRNGKey(4)
    # a pool of 64 lanes for 600 trials: refills, the drain and the lane compaction all happen
    ker = mc.run_trials(key, 600, RULES[rule], CFG, engine="kernel", chunk=64, block=128)
    xla = mc.run_trials(key, 600, RULES[rule], CFG, engine="fast", devices=1, chunk=64, block=128)
    for name in ("index", "rho", "tau", "lam", "delta"):
        np.testing.assert_array_equal(ker[name], xla[name], err_msg=name)
    # The same operations in the same order; XLA may still round differently (e.g. by contracting
    # a multiply-add), and a trial near a basin boundary can then end elsewhere. Trials that both
    # ran out of budget end "at the same step" whatever their paths did, so they are not compared.
    same = ker["steps"] == xla["steps"]
    assert same.mean() >= 0.98, same.mean()
    same &= ker["steps"] < CFG.max_steps
    assert (ker["outcome"] == xla["outcome"]).mean() >= 0.99
    np.testing.assert_allclose(ker["final_norm"][same], xla["final_norm"][same], rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(ker["e_increased"][same], xla["e_increased"][same])
    np.testing.assert_array_equal(ker["f_increased"][same], xla["f_increased"][same])
    outcomes = {mc.OUTCOMES[o] for o in ker["outcome"]}
    assert {"outer", "origin", "not_converged"} <= outcomes, outcomes


@pytest.mark.parametrize("rule", ["sg", "ema"])
@pytest.mark.parametrize("n", [2, 3])
def test_kernel_steps_are_the_fast_engine_steps(rule, n):
    """A few kernel steps from random states equal the vmapped fast engine's masked steps,
    for an odd n too (every index of the generated code is exercised)."""
    cfg = mc.Config(n=n, eta=0.07, max_steps=40)
    rule = rules.resolve(rule, momentum=0.8)
    idx = jnp.arange(37)  # not a multiple of the kernel's lane block
    trials = jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(9), i, cfg))(idx)
    ker = mc.run_points(trials, rule, cfg, engine="kernel")
    xla = mc.run_points(trials, rule, cfg, engine="fast")
    np.testing.assert_array_equal(ker["steps"], xla["steps"])
    assert (ker["steps"] == cfg.max_steps).all()  # all ran the whole budget: no early stop hides a step
    np.testing.assert_allclose(ker["final_norm"], xla["final_norm"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ker["max_E_rise"], xla["max_E_rise"], rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(ker["e_increased"], xla["e_increased"])


def test_kernel_results_do_not_depend_on_the_mesh_pool_size_or_threads(tmp_path):
    key = jax.random.PRNGKey(12)
    ema = RULES["ema"]
    one = mc.run_trials(key, 200, ema, CFG, engine="kernel", devices=1, chunk=64, threads=1)
    eight = mc.run_trials(key, 200, ema, CFG, engine="kernel", devices=8, chunk=8, block=300, threads=1)
    # 3 threads on a 320-lane pool: ranges of 2, 1 and 2 lane blocks
    threaded = mc.run_trials(key, 200, ema, CFG, engine="kernel", devices=1, chunk=320, threads=3)
    for name in one:
        np.testing.assert_array_equal(one[name], eight[name], err_msg=name)
        np.testing.assert_array_equal(one[name], threaded[name], err_msg=name)
    # and the study's trials.csv is byte-identical
    written = []
    for i, cols in enumerate((one, eight, threaded)):
        mc.write_trials_csv(tmp_path / f"{i}.csv", {"ema": cols})
        written.append((tmp_path / f"{i}.csv").read_bytes())
    assert written[0] == written[1] == written[2] and written[0].count(b"\n") == 201


def test_threads_split_lanes_into_whole_blocks():
    cfg = mc.Config(max_steps=50)
    trials = jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(1), i, cfg))(jnp.arange(5 * kernel.LANES + 7))
    serial = mc.run_points(trials, rules.sg(), cfg, engine="kernel", threads=1)
    for threads in (2, 4, 64):  # more threads than blocks: one block each
        split = mc.run_points(trials, rules.sg(), cfg, engine="kernel", threads=threads)
        for name in serial:
            np.testing.assert_array_equal(serial[name], split[name], err_msg=f"{threads}:{name}")
    with pytest.raises(ValueError, match="threads"):
        mc.run_trials(jax.random.PRNGKey(0), 10, rules.sg(), cfg, threads=0)


def test_host_pool_rows_are_padded_views():
    cols = np.arange(12.0).reshape(3, 4)
    pool = hostpool.host_matrix(cols)
    np.testing.assert_array_equal(pool, cols)
    assert pool.strides[0] == (4 + hostpool.KERNEL_ROW_PAD) * 8 and pool[1].flags.c_contiguous


def test_pack_roundtrip_is_exact():
    key = jax.random.PRNGKey(0)
    with jax.enable_x64(True):
        trial = jax.vmap(lambda i: mc.sample_trial(key, i, CFG))(jnp.arange(5))
        slot = jax.vmap(lambda t: mc.init_slot(mc.fast_engine(RULES["ema"], CFG), CFG, t))(trial)
        tree = jax.device_get((trial, slot._replace(t=slot.t + 123456789, e_up=~slot.e_up)))
    spec = hostpool.pack_spec(tree)
    back = hostpool.unpack(hostpool.pack(tree), spec)
    for x, y in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(back)):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    names = [c.name for c in spec.columns]
    assert {"rho", "a0", "a1", "B10", "c1", "t", "live"} <= set(names)
    assert spec.width == sum(c.hi - c.lo for c in spec.columns) == hostpool.pack(tree).shape[1]
    # every array of the EMA kernel has its own row of the packed pool
    rows = hostpool.kernel_row_index(spec, CFG, mc.closed_form(RULES["ema"]))
    assert list(rows) == kernel.argument_names(CFG.n, True) and len(set(rows.values())) == len(rows)


def test_engine_selection():
    assert mc.resolve_engine("auto", 2, cpu=True) == "kernel"
    assert mc.resolve_engine("auto", 2, cpu=False) == "fast"
    assert mc.resolve_engine("auto", 6, cpu=True) == "rules"
    with pytest.raises(ValueError, match="kernel"):
        mc.resolve_engine("kernel", 2, cpu=False)
    with pytest.raises(ValueError, match="engine must be one of"):
        mc.resolve_engine("numba", 2)
    # the kernel engine's per-trial functions are the fast engine's
    assert mc.get_engine("kernel", rules.sg(), CFG).step.__qualname__.startswith("fast_engine")
    # a rule without a closed form runs on the autodiff engine; the accelerated ones refuse it
    for rule in (rules.plain(), rules.ema(rules.linear_momentum(0.9, 1.0, 100)), rules.directpred()):
        assert rule.ema_alpha is None
        assert mc.resolve_engine("auto", 2, cpu=True, rule=rule) == "rules"
        for engine in ("kernel", "fast"):
            with pytest.raises(ValueError, match=f"rule '{rule.name}' has no closed form"):
                mc.get_engine(engine, rule, CFG)
    assert mc.closed_form(rules.sg()) == mc.ClosedForm(0.0, False)
    assert mc.closed_form(rules.ema(0.9)) == mc.ClosedForm(0.9, True)


def test_generated_source_states_the_fast_engine_formulas():
    src = kernel.step_source(2, ema=True)
    compile(src, "<kernel>", "exec")  # valid Python
    for line in ("u0 = (B00 * a0 + B01 * a1)", "r1 = rho * u1 - tau * c1",
                 "sa0 = eta * (B00 * r0 + B10 * r1 + lam * a0)", "sB10 = eta * (r1 * a0 + lam * B10)",
                 "c_new0 = alpha * c0 + (1 - alpha) * (a0 - sa0)"):
        assert line in src, line
    assert "c0" not in kernel.step_source(2, ema=False)
