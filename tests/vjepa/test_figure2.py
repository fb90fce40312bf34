"""The Figure-2 study (dualjax.vjepa.figure2): rules × seeds, figure2.json, the random-init probe."""

import dataclasses
import json

import numpy as np
import pytest

from dualjax.vjepa import config as config_lib
from dualjax.vjepa import figure2


def test_two_seeds_write_figure2_json(tmp_path, sg_built):
    """SG from 2 seeds, 3 steps (one rule: each run costs seconds of tracing, and the rules' loop is
    the same): the schema of figure2.json; seed k sets seed and batch_seed, not the clips; the
    step-0 probe is the random-init probe; SG's F = E and Δξ = Δθ; the across-seed statistics are
    those of the runs."""
    # sg_built's config, so its init and step programs are in the session's cache; probes of 5 steps
    base = dataclasses.replace(sg_built.cfg, probe_steps=5, num_train=16, num_heldout=16)
    res = figure2.run(base, tmp_path, teachers=("sg",), seeds=(0, 1))
    saved = json.loads((tmp_path / figure2.SUMMARY).read_text())
    assert saved == json.loads(json.dumps(res)) and (tmp_path / figure2.FIGURE).stat().st_size > 50_000
    assert set(saved) == {"config", "teachers", "seeds", "dataset", "num_classes", "chance", "runs", "across_seeds",
                          "figure"}
    assert saved["seeds"] == [0, 1] and saved["num_classes"] == 16 and saved["chance"] == 1 / 16
    assert config_lib.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}) == base
    runs = saved["runs"]["sg"]
    assert list(saved["runs"]) == ["sg"] and list(runs) == ["0", "1"]
    for seed, e in runs.items():
        assert set(e) == {"steps", "E", "F", "d_theta", "d_psi", "d_xi", "lr", "probe_top1", "probe_train_top1",
                          "random_init_top1", "wall_s", "summary"}
        assert e["steps"] == [0, 1, 2] and all(len(e[k]) == 3 for k in ("E", "F", "d_theta", "d_psi", "d_xi", "lr"))
        assert [s for s, _ in e["probe_top1"]] == [s for s, _ in e["probe_train_top1"]] == [0, 2]
        assert e["random_init_top1"] == e["probe_top1"][0][1] and e["wall_s"] > 0
        assert e["F"] == e["E"] and e["d_xi"] == e["d_theta"]  # SG: ξ = θ
        run_cfg = config_lib.Config.from_json((tmp_path / "sg" / f"seed{seed}" / "config.json").read_text())
        assert run_cfg == dataclasses.replace(base, seed=int(seed), batch_seed=int(seed))
        assert run_cfg.train_batch_seed == int(seed) and run_cfg.data_seed == base.data_seed
    assert runs["0"]["E"][0] != runs["1"]["E"][0]  # another init and another first batch
    stats = saved["across_seeds"]["sg"]
    finals = [e["probe_top1"][-1][1] for e in runs.values()]
    assert stats["final_probe_top1"]["values"] == finals
    assert stats["final_probe_top1"]["mean"] == pytest.approx(np.mean(finals))
    assert stats["final_probe_top1"]["std"] == pytest.approx(np.std(finals, ddof=1))
    assert stats["random_init_top1"]["values"] == [e["random_init_top1"] for e in runs.values()]


def test_seed_config_and_parse_seeds(small_cfg):
    cfg = figure2.seed_config(small_cfg, "sg", 3)
    assert (cfg.teacher, cfg.seed, cfg.batch_seed, cfg.train_batch_seed) == ("sg", 3, 3, 3)
    assert small_cfg.batch_seed is None and small_cfg.train_batch_seed == small_cfg.data_seed
    assert figure2.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,a", "1,1", "-1"):
        with pytest.raises(ValueError, match=f"seeds must be .*got '{bad}'"):
            figure2.parse_seeds(bad)
    assert figure2.seed_stats([0.5, None]) == {"values": [0.5], "mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5}
    assert figure2.seed_stats([None])["mean"] is None
