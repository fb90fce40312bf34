"""A rule defined here, outside the package, registered by name, runs through every instrument: the
driver (simulate), the Monte Carlo (run_points and the study), the stability API and
`dualjax train --teacher NAME`. Unknown names list the registered ones. And no module of the package
outside dualjax/rules branches on a rule's name."""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dualjax import cli, rules
from dualjax.configs import override
from dualjax.linear import model, simulation, spheres, stability
from dualjax.linear import montecarlo as mc


def my_ema(momentum=0.9):
    """A user's EMA teacher written from scratch, without the library's helpers:
    ξ_t = α ξ_{t−1} + (1 − α) θ_t, ξ₀ = θ₀; ``momentum`` a constant or a schedule α(t)."""
    alpha = momentum if callable(momentum) else (lambda count: momentum)

    def init(theta):
        return rules.TeacherState(xi=jax.tree.map(jnp.copy, theta), count=jnp.zeros((), jnp.int32))

    def teacher(theta, state):
        return jax.lax.stop_gradient(state.xi)

    def advance(theta, state):  # no **extras: the driver passes only the keywords it names
        a = alpha(state.count)
        xi = jax.tree.map(lambda c, p: (a * c + (1 - a) * p).astype(c.dtype), state.xi, theta)
        return rules.TeacherState(xi, state.count + 1)

    return rules.TeacherRule("mine", init, teacher, advance, carries_teacher=True, momentum=alpha,
                             flow=rules.ema_flow)


@pytest.fixture(scope="module", autouse=True)
def registered():
    rules.register("mine", my_ema)
    yield
    rules.unregister("mine")


def test_names_and_unknown_rule_errors():
    assert rules.names()[:4] == ("plain", "sg", "ema", "directpred") and "mine" in rules.names()
    with pytest.raises(ValueError, match="unknown rule 'byol'; registered rules: plain, sg, ema, directpred, mine"):
        rules.get("byol")
    with pytest.raises(ValueError, match="already registered"):
        rules.register("mine", my_ema)
    assert rules.options("mine") == ("momentum",) and rules.resolve("sg", momentum=0.5) is rules.sg()


def test_user_rule_through_the_driver_equals_the_builtin_ema():
    mom = model.moments([[1.0, 0.2], [0.2, 0.8]], [[0.9, 0.1], [-0.05, 0.7]])
    A0, B0 = model.init_params(jax.random.PRNGKey(1), 4, 2, scale=0.5)
    mine = simulation.simulate(rules.get("mine", momentum=0.9), A0, B0, mom, 0.05, eta=0.3, max_steps=3000, tol=1e-9)
    ema = simulation.simulate(rules.ema(0.9), A0, B0, mom, 0.05, eta=0.3, max_steps=3000, tol=1e-9)
    assert mine.status == ema.status == "converged" and mine.steps == ema.steps
    np.testing.assert_allclose(mine.A, ema.A, rtol=1e-12)
    np.testing.assert_allclose(mine.C, ema.C, rtol=1e-12)


def test_user_rule_through_the_monte_carlo():
    """run_points and the study take the registered rule (no closed form: the autodiff engine) and
    agree trial for trial; the command line (`dualjax montecarlo --rules sg,NAME`) is run in docs/recipes.md."""
    cfg = mc.Config(n=2, eta=0.1, init_scale=0.5, max_steps=3000, lam_range=(0.05, 0.1))
    mine = rules.get("mine", momentum=0.9)
    trials = jax.vmap(lambda i: mc.sample_trial(jax.random.PRNGKey(2), i, cfg))(jnp.arange(24))
    points = mc.run_points(trials, mine, cfg)
    study = mc.study(24, [mine], cfg, seed=2)["mine"]
    for name in ("outcome", "steps", "e_increased", "f_increased"):
        np.testing.assert_array_equal(points[name], study[name], err_msg=name)
    np.testing.assert_allclose(points["final_norm"], study["final_norm"], rtol=1e-12)  # two XLA programs
    assert set(np.asarray(mc.OUTCOMES)[study["outcome"]]) >= {"outer", "origin"}


def test_user_rule_through_the_stability_api():
    """At the m = 1 outer sphere S₂ (Prop 4.11) the user's rule has the built-in EMA's spectrum."""
    rho, tau, lam = 1.0, 0.8, 0.05
    mom = model.moments(rho, tau)
    S = np.array([[float(spheres.radii(rho, tau, lam)[1]) ** 2]])
    mine = stability.analyze(S, mom, lam, 3, rule=rules.get("mine"), k=0.3)
    ema = stability.analyze(S, mom, lam, 3, rule=rules.ema(), k=0.3)
    assert (mine.rule, mine.kind, mine.n_zero) == ("mine", ema.kind, ema.n_zero) and mine.kind == stability.STABLE
    np.testing.assert_allclose(np.sort_complex(mine.spectrum), np.sort_complex(ema.spectrum), atol=1e-12)


TINY = """from dualjax.vjepa.config import Config

CONFIG = Config(frames=4, size=16, tubelet=2, patch=4, num_train=16, num_heldout=8, model="tiny", width=32,
                depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2, mask_blocks=(8,), mask_scales=(0.15,),
                steps=2, batch_size=4, warmup_steps=1, log_every=1, momentum_start=0.5, num_devices=1)
"""


def test_user_rule_through_dualjax_train(tmp_path, capsys):
    preset = tmp_path / "tiny_test.py"
    preset.write_text(TINY)
    out = tmp_path / "run"
    argv = ["train", "--config", str(preset), "--teacher", "mine", "--out", str(out), "--no-probe", "--no-progress"]
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "momentum" in r]
    assert json.loads((out / "config.json").read_text())["teacher"] == "mine" and len(steps) == 2
    assert steps[0]["momentum"] == pytest.approx(0.5) and all(r["d_xi"] > 0 for r in steps)
    capsys.readouterr()
    cfg = override(__import__("dualjax.vjepa.config", fromlist=["load"]).load(str(preset)), ["teacher=mine"])
    assert cfg.validate().teacher == "mine"  # --set teacher=NAME resolves through the same registry
    with pytest.raises(ValueError, match="teacher='directpred'.*transformer"):
        override(cfg, ["teacher=directpred"]).validate()
    with pytest.raises(ValueError, match="teacher='byol': unknown rule 'byol'; registered rules: .*mine"):
        override(cfg, ["teacher=byol"]).validate()


NAME_TEST = re.compile(r"""[!=]=\s*["'](?:sg|ema|plain|directpred)["']|["'](?:sg|ema|plain|directpred)["']\s*[!=]="""
                       r"""|\b(?:rule|teacher)\w*\.name\s*[!=]=|\bin\s*[(\[{]\s*["'](?:sg|ema|plain)["']""")


def test_no_module_outside_rules_branches_on_a_rule_name():
    root = Path(rules.__file__).parents[1]
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if path.parent.name == "rules" and path.parent.parent == root:
            continue  # the registry itself
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if NAME_TEST.search(line):
                offenders.append(f"{path.relative_to(root.parent)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    assert NAME_TEST.search('if rule == "ema":') and NAME_TEST.search("rule.name == x")  # the test can fail


def test_passes_gradient_reads_the_teacher_functions():
    """plain descends E (its teacher carries θ's gradient); SG, EMA and DirectPred do not; a user rule
    with a stop-gradient teacher under another name is read off its functions, not its name."""
    assert rules.passes_gradient(rules.plain())
    assert not any(rules.passes_gradient(r) for r in (rules.sg(), rules.ema(0.9), rules.directpred()))
    mine = rules.plain()._replace(name="sg-like", teacher=lambda theta, state: jax.lax.stop_gradient(theta))
    assert not rules.passes_gradient(mine) and rules.passes_gradient(rules.sg()._replace(name="x", teacher=lambda t, s: t))
