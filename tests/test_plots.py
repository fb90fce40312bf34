"""The figures of the m = 1 study (dualjax.linear.montecarlo.figures) are written and are real PNGs
of a sensible size."""

import numpy as np

from dualjax import rules
from dualjax.linear import montecarlo as mc
from dualjax.linear.montecarlo import figures

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path, min_bytes=10_000):
    with open(path, "rb") as fh:
        data = fh.read()
    return data[:8] == PNG and len(data) > min_bytes


def test_fraction_bars_with_intervals(tmp_path):
    rng = np.random.default_rng(0)
    cols = {"outcome": rng.choice([0, 1, 3], 300, p=[0.5, 0.45, 0.05]), "delta": rng.normal(size=300),
            "steps": rng.integers(1, 100, 300), "e_increased": rng.random(300) < 0.3,
            "f_increased": rng.random(300) < 0.2}
    summ = mc.summary({"sg": cols, "ema": cols}, mc.Config(), seed=0)
    assert _is_png(figures.plot_fractions(tmp_path / "fractions.png", summ))


def test_trajectories_basins_and_energy(tmp_path):
    p = figures.plot_trajectories(tmp_path / "traj.png", num_starts=3, num_steps=600)
    assert _is_png(p)
    # a coarse basin map: the corners of [-1.5, 1.5]^2 lie well outside S1 and reach S2 (r2 = 1)
    xs, codes, _ = figures.basin_map(rules.sg(), grid=5, max_steps=6000)
    assert codes.shape == (5, 5) and xs[0] == -1.5
    assert codes[0, 0] == mc.OUTER and codes[-1, -1] == mc.OUTER
    assert _is_png(figures.plot_basins(tmp_path / "basins.png", grid=5, max_steps=6000))
    case = {"rule": rules.ema(0.99), "rho": 0.5, "tau": 0.6, "lam": 0.1, "a0": np.array([0.1, 0.05]),
            "B0": 0.1 * np.eye(2)}
    a, E, F = figures.run_paths(case["rule"], [case["a0"]], [case["B0"]], [0.5], [0.6], [0.1], num_steps=400, every=20)
    assert a.shape == (1, 21, 2) and E.shape == F.shape == (1, 21)
    assert np.isclose(E[0, 0], F[0, 0])  # ξ₀ = θ₀
    assert _is_png(figures.plot_energy(tmp_path / "energy.png", [case], num_steps=400, every=20))


def test_energy_cases_are_the_study_trials_and_batched_paths_are_single_paths():
    """The picked cases carry trial i's own data (sample_trial at its index, through the study's
    sampler), and the paths of several cases of one rule, run as one batch, are each case's own."""
    import jax

    cfg = mc.Config(max_steps=20_000)
    pair = [rules.sg(), rules.ema(0.99)]
    results = mc.study(200, pair, cfg, seed=3)
    cases = figures.energy_cases(results, cfg, 3, pair)
    assert [c["rule"].name for c in cases] == ["sg", "ema", "sg"]  # S₂ for each rule, then a collapse
    for case in cases:
        idx = int(case["label"].split("trial ")[1].rstrip(")"))
        tr = mc.sample_trial(jax.random.PRNGKey(3), idx, cfg)
        assert (case["rho"], case["tau"], case["lam"]) == (float(tr.rho), float(tr.tau), float(tr.lam))
        np.testing.assert_array_equal(case["a0"], np.asarray(tr.a0))
        np.testing.assert_array_equal(case["B0"], np.asarray(tr.B0))
    together = figures._case_paths(cases, eta=cfg.eta, num_steps=300, every=30)
    for case, paths in zip(cases, together):
        alone = figures.run_paths(case["rule"], [case["a0"]], [case["B0"]], [case["rho"]], [case["tau"]],
                                  [case["lam"]], eta=cfg.eta, num_steps=300, every=30)
        for x, y in zip(paths, alone):
            np.testing.assert_allclose(x, y[0], rtol=1e-12, atol=1e-15)
