"""Each figure dualjax writes carries the artists a reader needs (issue 18): the palette of
:mod:`dualjax.style` (one colour per rule, S₂ never in an outcome colour), every axis labelled,
legend entries that match what is drawn, and the instance stated. The figure is caught at
:func:`dualjax.style.save`, before it is closed."""

import numpy as np
import pytest
from matplotlib.colors import to_hex

from dualjax import rules, style
from dualjax.linear import example
from dualjax.linear import montecarlo as mc
from dualjax.linear.montecarlo import figures


@pytest.fixture
def saved(monkeypatch):
    """The figures passed to style.save, in order (the files are still written)."""
    figs = []
    real = style.save

    def keep(fig, path):
        figs.append(fig)
        return real(fig, path)

    monkeypatch.setattr(style, "save", keep)
    return figs


def _gid(ax, gid):
    """The artists of ``ax`` with that gid (every gid starting with it when it ends in ':')."""
    return [a for a in ax.get_children()
            if (a.get_gid() or "").startswith(gid) if gid.endswith(":") or a.get_gid() == gid]


def _labelled(ax):
    return ax.get_xlabel() and ax.get_ylabel()


def _legend_labels(fig_or_ax):
    legends = fig_or_ax.legends if hasattr(fig_or_ax, "legends") else [fig_or_ax.get_legend()]
    return [t.get_text() for leg in legends if leg for t in leg.get_texts()]


def test_palette_is_one_colour_per_rule_name():
    names = ["sg", "ema", "plain", "directpred"]
    assert len({style.rule_color(n) for n in names}) == 4
    assert style.rule_color("SG") == style.rule_color("sg") == style.RULE_COLORS["sg"]
    assert style.rule_color("my_rule") == style.rule_color("my_rule") in style.FALLBACK  # fixed across calls
    assert not set(style.OUTCOME_COLORS.values()) & {to_hex(s["color"]) for s in style.SPHERE_STYLE.values()}
    assert style.figure_name("basins", "svg") == "basins.svg"
    with pytest.raises(ValueError, match="figure format must be one of png, svg, pdf, got 'jpg'"):
        style.figure_name("basins", "jpg")


def test_basins_S2_visible_legend_matches_map(tmp_path, saved):
    figures.plot_basins(tmp_path / "basins.png", grid=5, max_steps=6000)
    (fig,) = saved
    axes = fig.axes
    assert len(axes) == 2
    for ax in axes:
        assert _labelled(ax) and "$a_1(0)$" == ax.get_xlabel()
        (s2,) = _gid(ax, "S2")
        (image,) = ax.images
        codes = np.unique(image.get_array())
        basin_colours = {to_hex(image.cmap(image.norm(c))) for c in codes}
        assert to_hex(s2.get_color()) not in basin_colours  # S₂ is drawn over the outer basin, visibly
        assert np.isclose(np.abs(s2.get_xdata() + 1j * s2.get_ydata()).max(), 1.0)  # r₂ = 1 for EXAMPLE
    shown = {int(c) for ax in axes for c in np.unique(ax.images[0].get_array())}
    patches = [t for t in _legend_labels(fig) if t in style.OUTCOME_LABELS.values()]
    assert patches == [style.OUTCOME_LABELS[mc.OUTCOMES[c]] for c in sorted(shown)]
    title = fig._suptitle.get_text()
    assert "not the study's data" in title and "$B_0$ = [" in title and "[[" not in title
    assert (tmp_path / "basins.png").stat().st_size > 10_000


def test_trajectories_marker_legend_and_rule_colours(tmp_path, saved):
    figures.plot_trajectories(tmp_path / "traj.png", num_starts=3, num_steps=600)
    (fig,) = saved
    labels = _legend_labels(fig)
    assert r"start $a_0$" in labels
    for ax, rule in zip(fig.axes, figures.default_rules()):
        assert _labelled(ax) and ax.get_title().startswith(style.rule_name_label(rule.name))
        assert {to_hex(p.get_color()) for p in _gid(ax, "path")} == {style.rule_color(rule.name)}
        assert len(_gid(ax, "start")) == 3
        ends = {a.get_gid().split(":")[1] for a in _gid(ax, "end:")}
        assert {f"end: {style.OUTCOME_LABELS[o]}" for o in ends} <= set(labels)
        (s2,) = _gid(ax, "S2")
        assert to_hex(s2.get_color()) not in {to_hex(a.get_markerfacecolor()) for a in _gid(ax, "end:")}
    assert sum(t.startswith("end: ") for t in labels) == len({a.get_gid() for ax in fig.axes for a in _gid(ax, "end:")})


def test_fractions_labels_clear_of_caps_and_paper_only_given_delta(tmp_path, saved):
    rng = np.random.default_rng(0)
    cols = {"outcome": rng.choice([0, 1, 3], 300, p=[0.5, 0.45, 0.05]), "delta": rng.normal(size=300),
            "steps": rng.integers(1, 100, 300), "e_increased": rng.random(300) < 0.3,
            "f_increased": rng.random(300) < 0.2}
    summ = mc.summary({"sg": cols, "ema": cols}, mc.Config(), seed=0)
    figures.plot_fractions(tmp_path / "fractions.png", summ)
    (fig,) = saved
    whole, given = fig.axes
    assert whole.get_ylabel() and all(t.get_text() for t in whole.get_xticklabels())
    assert not _gid(whole, "paper:") and len(_gid(given, "paper:")) == sum(len(v) for v in summ["paper"].values())
    for ax, key in ((whole, "fractions"), (given, "fractions_given_delta_nonneg")):
        for rule in ("sg", "ema"):
            bars = _gid(ax, f"bars:{rule}")
            assert len(bars) == 5 and {to_hex(p.get_facecolor()) for p in bars} == {style.rule_color(rule)}
        tops = sorted(100 * max(summ["rules"][r][key][o]["ci95"][1], summ["paper"][r].get(o, 0) * (ax is given))
                      for r in ("sg", "ema") for o in mc.OUTCOMES)
        ys = sorted(t.get_position()[1] for t in ax.texts)
        assert len(ys) == 10 and all(y > top for y, top in zip(ys, tops))  # every value above its cap
    n = summ["rules"]["sg"]["delta_nonneg"]["count"]
    title = fig._suptitle.get_text()
    assert f"empirical {n}/300" in title and f"exact {mc.P_DELTA_NONNEG:.4f}" in title
    assert _legend_labels(given) == ["paper", "SG", "EMA"]


def test_energy_axes_control_and_rising_spans(tmp_path, saved):
    case = {"rho": 0.5, "tau": 0.6, "lam": 0.1, "a0": np.array([0.3, 0.05]), "B0": 0.3 * np.eye(2)[::-1]}
    cases = [{**case, "rule": rules.ema(0.99), "label": "EMA → $S_2$"},
             {**case, "rule": rules.sg(), "a0": np.array([0.01, 0.0]), "label": "control: SG → origin"}]
    figures.plot_energy(tmp_path / "energy.png", cases, num_steps=2000, every=20)
    (fig,) = saved
    ema_ax, control = fig.axes
    assert all(_labelled(ax) for ax in fig.axes)
    assert control.get_title().startswith("control:") and "control" in fig._suptitle.get_text()
    (E,) = _gid(ema_ax, "E")
    assert to_hex(E.get_color()) == style.rule_color("ema") and len(_gid(ema_ax, "F")) == 1
    assert not _gid(control, "F") and not _gid(control, "E rose")  # SG has no copy; the collapse never rises
    rises = np.flatnonzero(np.diff(E.get_ydata()) > 0)
    spans = _gid(ema_ax, "E rose")
    assert 0 < len(spans) == 1 + int(np.sum(np.diff(rises) > 1))  # one shaded span per stretch, not a dot each
    assert any(t.startswith(f"E rose: {rises.size} of ") for t in _legend_labels(ema_ax))


def test_linear_dynamics_every_rule_F_of_ema_dense_start(tmp_path, saved):
    summary = example.run_example(1.0, 0.8, 0.05, steps=400, out=tmp_path / "lin", fmt="svg")
    (fig,) = saved
    norm_ax, e_ax = fig.axes
    assert norm_ax.get_ylabel() == r"$\|A_t\|_F$" and all(_labelled(ax) for ax in fig.axes)
    for name in ("plain", "sg", "ema"):
        (line,) = _gid(e_ax, f"E:{name}")
        assert to_hex(line.get_color()) == style.rule_color(name)
        assert to_hex(_gid(norm_ax, f"normA:{name}")[0].get_color()) == style.rule_color(name)
    assert [a.get_gid() for a in _gid(e_ax, "F:")] == ["F:ema"]  # the rule with a teacher, and only it
    (F,) = _gid(e_ax, "F:ema")
    steps = F.get_xdata()
    assert list(steps[:11]) == list(range(11)) and steps[-1] == 400  # every step at the start
    assert F.get_ydata()[0] == summary["E0"] and F.get_ydata()[-1] != E_at(e_ax, "ema")[-1]
    labels = _legend_labels(norm_ax)
    assert any("Lemma 4.3" in t for t in labels) and any("$r_2$" in t for t in labels)
    assert summary["figure"] == str(tmp_path / "lin" / "linear_dynamics.svg")  # --format svg
    assert b"<svg" in (tmp_path / "lin" / "linear_dynamics.svg").read_bytes()[:400]
    assert not (tmp_path / "lin" / "linear_dynamics.png").exists()


def E_at(ax, name):
    return _gid(ax, f"E:{name}")[0].get_ydata()


def _vjepa_records(rule, seed):
    """metrics.jsonl-like records: E = F for SG (ξ = θ), ‖Δξ‖ = ‖Δθ‖ for SG, probes every 5 steps."""
    lr = [1e-3 * (1 + s) for s in range(21)]
    return [{"step": s, "E": (1 + seed) / (s + 1), "F": (1 + seed) / (s + 1) * (1.0 if rule == "sg" else 0.8),
             "d_theta": 0.1 * lr[s], "d_psi": 0.05, "d_xi": 0.1 * lr[s] * (1.0 if rule == "sg" else 0.01), "lr": lr[s],
             **({"probe_top1": 0.3 + 0.1 * seed + s / 100, "probe_train_top1": 0.9} if s % 5 == 0 or s == 20 else {})}
            for s in range(21)]


@pytest.mark.parametrize("n_seeds", [1, 3])
def test_vjepa_figure2_panels_seeds_and_legends(tmp_path, monkeypatch, saved, n_seeds):
    """Four labelled panels, rules in their colours; SG's F (= E) and Δξ (= Δθ) drawn in another line
    style with markers placed between the other line's; the mean over seeds as the line and the
    min–max band around it; every legend entry an artist with data; the random-init line at the
    step-0 probes' mean. One seed goes through plot_runs (records) and is not written: a PNG of
    this figure takes 2 s, and the 3-seed one is written."""
    import matplotlib.pyplot as plt

    from dualjax.vjepa import plots, rundir

    if n_seeds == 1:
        monkeypatch.setattr(style, "save", lambda fig, path: saved.append(fig) or plt.close(fig) or str(path))
        plots.plot_runs({"sg": _vjepa_records("sg", 0), "ema": _vjepa_records("ema", 0)}, tmp_path / "f.png",
                        chance=1 / 16)
    else:
        runs = {rule: [rundir.series(_vjepa_records(rule, k)) for k in range(n_seeds)] for rule in ("sg", "ema")}
        plots.plot_figure2(runs, tmp_path / "figure2.png", chance=1 / 16)
        assert (tmp_path / "figure2.png").stat().st_size > 50_000
    (fig,) = saved
    ax_obj, ax_inc, ax_rel, ax_probe = fig.axes
    mean_seed = (n_seeds - 1) / 2
    for ax in fig.axes:
        assert ax.get_xlabel() == "step" and ax.get_ylabel()
        handles, labels = ax.get_legend_handles_labels()
        assert _legend_labels(ax) == labels and labels
        assert all(len(h.get_ydata()) and np.isfinite(h.get_ydata()).all() for h in handles)
    for name in ("sg", "ema"):
        lines = [a for a in ax_obj.lines + ax_inc.lines + ax_rel.lines + ax_probe.lines if a.get_gid().endswith(name)]
        assert {to_hex(a.get_color()) for a in lines} == {style.rule_color(name)} and len(lines) == 10
        (E,) = _gid(ax_obj, f"E:{name}")
        np.testing.assert_allclose(E.get_ydata(), (1 + mean_seed) / np.arange(1, 22))  # the mean over seeds
        bands = _gid(ax_obj, f"E:{name}:band")
        assert len(bands) == (n_seeds > 1)
        if bands:  # min–max over seeds: seed 0 below, seed n−1 above
            ys = bands[0].get_paths()[0].vertices[:, 1]
            assert ys.min() == pytest.approx(1 / 21) and ys.max() == pytest.approx(n_seeds)
        (rel,) = _gid(ax_rel, f"d_theta/lr:{name}")
        np.testing.assert_allclose(rel.get_ydata(), 0.1)  # ‖Δθ‖ / lr
    (E,), (F,) = _gid(ax_obj, "E:sg"), _gid(ax_obj, "F:sg")
    np.testing.assert_array_equal(E.get_ydata(), F.get_ydata())
    assert E.get_linestyle() != F.get_linestyle() and F.get_marker() == "o"
    (th,), (xi,) = _gid(ax_inc, "d_theta:sg"), _gid(ax_inc, "d_xi:sg")
    np.testing.assert_array_equal(th.get_ydata(), xi.get_ydata())
    assert th.get_linestyle() != xi.get_linestyle() and th.get_marker() != xi.get_marker()
    assert th.get_markevery()[1] == xi.get_markevery()[1] and th.get_markevery()[0] != xi.get_markevery()[0]
    assert ax_inc.get_yscale() == "log" and ax_probe.get_yscale() == "linear"  # ‖Δψ‖ = 0.05 vs 1e-6
    (init,) = _gid(ax_probe, "random_init")  # SG and EMA share the step-0 probe: one line
    assert init.get_ydata()[0] == pytest.approx(0.3 + 0.1 * mean_seed)
    assert "random init (step 0)" in init.get_label() and _gid(ax_probe, "chance")
    (train,) = _gid(ax_probe, "probe_train:ema")
    assert train.get_linestyle() == ":" and not _gid(ax_probe, "probe_train:ema:band")
    assert [int(s) for s in _gid(ax_probe, "probe:sg")[0].get_xdata()] == [0, 5, 10, 15, 20]


def test_prop47_counts_bars_match_the_counts(tmp_path, saved):
    from dualjax.claims import prop4_7

    counts = {"gauss": [0, 1, 1, 2], "aug": [0, 0, 1, 3]}
    prop4_7.plot_counts(counts, tmp_path / "counts.pdf", "title")
    (fig,) = saved
    (ax,) = fig.axes
    assert _labelled(ax) and _legend_labels(ax) == [prop4_7.KIND_LABELS[k] for k in counts]
    for kind, values in counts.items():
        assert [p.get_height() for p in _gid(ax, f"bars:{kind}")] == [values.count(x) for x in range(4)]
    assert (tmp_path / "counts.pdf").read_bytes()[:5] == b"%PDF-"  # the suffix picks the format
