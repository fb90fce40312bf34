"""Bad input, interruption and corrupt files through the ``dualjax`` entry point (issue 15).

* A table of bad command lines run in-process through :func:`dualjax.cli.main`; for each: exit
  code 2, one line ``dualjax <command>: error: ...`` naming the value, no traceback, and nothing
  written or deleted (the whole working area is snapshotted before and after).
* The data-loss defects end to end, in real processes: a failed fresh run over an existing run
  with ``--overwrite`` changes nothing; a resume past a corrupt newest checkpoint sets it aside
  and writes that step again; a Monte Carlo study SIGKILLed between its CSV and its summary
  leaves a folder that is recognisably incomplete (and is refused until ``--overwrite``).
* The smaller rules: ``--overwrite`` clears only what a command owns, strict JSON, the exit-code
  convention and ``--debug``, probe's read-only fallback, a resume without checkpoints.

One tiny V-JEPA run (4 steps, checkpoints 2 and 4) is trained once per module in a child process
and copied where a test damages it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dualjax import checkpoint, cli, errors, outputs

pytestmark = pytest.mark.float32  # the trainer runs in float32, as under tests/vjepa

TINY = """
from dualjax.vjepa.config import Config

CONFIG = Config(frames=4, size=16, tubelet=2, patch=4, num_train=64, num_heldout=32, model="tiny", width=32,
                depth=1, heads=2, pred_width=16, pred_depth=1, pred_heads=2, mask_blocks=(8,), mask_scales=(0.15,),
                teacher="ema", momentum_start=0.9, steps=4, batch_size=4, warmup_steps=1, lr=1e-3, start_lr=1e-4,
                final_lr=1e-5, log_every=1, ckpt_every=2, ckpt_keep=3, num_devices=1, probe_steps=2, probe_batch=16)
"""
MC = ["--trials", "40", "--max-steps", "3000", "--eta", "0.1", "--chunk", "16", "--no-figures"]


def _env(cache: Path) -> dict:
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    env.pop("JAX_ENABLE_X64", None)
    return env


def _dualjax(*args, cache: Path, prelude: str = "") -> subprocess.CompletedProcess:
    """``dualjax ARGS`` in a child process (``prelude``: Python run first, e.g. a fault to inject)."""
    code = f"{prelude}\nimport sys\nfrom dualjax.cli import main\nsys.exit(main({[str(a) for a in args]!r}))"
    return subprocess.run([sys.executable, "-c", code], env=_env(cache), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def area(tmp_path_factory):
    """The working area: a trained tiny run, damaged copies of it, a file, a non-empty folder,
    bad video lists. Bad inputs must leave all of it as it is."""
    root = tmp_path_factory.mktemp("area")
    (root / "tiny.py").write_text(TINY)
    trained = _dualjax("train", "--config", root / "tiny.py", "--out", root / "run", "--no-probe", "--no-progress",
                       cache=root / "xla-cache")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert checkpoint.committed_steps(root / "run" / "checkpoints") == [2, 4]
    (root / "afile").write_text("not a folder")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("someone's results")
    (root / "nolist.txt").write_text("/nonexistent/a.mp4 0\n/nonexistent/b.mp4 1\n")
    for name, edit in (("badjson", lambda t: t[:-5]), ("wrongtype", lambda t: t.replace('"steps": 4', '"steps": "4"')),
                       ("reshaped", lambda t: t.replace('"width": 32', '"width": 64'))):
        shutil.copytree(root / "run", root / name)
        (root / name / "config.json").write_text(edit((root / "run" / "config.json").read_text()))
    shutil.copytree(root / "run", root / "allcorrupt")
    for step in (2, 4):
        _truncate_largest(root / "allcorrupt" / "checkpoints" / str(step))
    return root


def _truncate_largest(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and "/d/" in str(p)]
    big = max(files, key=lambda p: p.stat().st_size)
    with open(big, "r+b") as fh:
        fh.truncate(big.stat().st_size // 2)
    return big


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): ("dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if "xla-cache" not in p.parts}


# (argv with {A} = the area, needle the message must contain)
CASES = {
    # linear: every argument range-checked, the folder before the work
    "linear-steps-negative": (["linear", "--steps", "-5", "--out", "{A}/new"],
                              "steps must be a positive integer, got -5"),
    "linear-steps-zero": (["linear", "--steps", "0", "--out", "{A}/new"], "steps must be a positive integer, got 0"),
    "linear-init-scale": (["linear", "--init-scale", "-1", "--out", "{A}/new"],
                          "init_scale must be a finite scalar > 0"),
    "linear-n-not-above-m": (["linear", "--n", "1", "--out", "{A}/new"], "n must exceed m"),
    "linear-out-file": (["linear", "--out", "{A}/afile"], "'{A}/afile' exists and is not a folder"),
    "linear-out-proc": (["linear", "--out", "/proc/dualjax-out"], "'/proc' is not writable"),
    "linear-out-non-empty": (["linear", "--out", "{A}/full"], "'{A}/full' is not empty (keep.txt)"),
    # montecarlo: a million trials would take minutes: the folder is refused before the study
    "mc-out-file": (["montecarlo", "--trials", "1000000", "--out", "{A}/afile"], "exists and is not a folder"),
    "mc-out-below-file": (["montecarlo", "--trials", "1000000", "--out", "{A}/afile/sub"],
                          "'{A}/afile' is not a folder"),
    "mc-out-proc": (["montecarlo", "--trials", "1000000", "--out", "/proc/mc"], "'/proc' is not writable"),
    "mc-out-non-empty": (["montecarlo", "--trials", "1000000", "--out", "{A}/full"], "pass --overwrite"),
    "mc-init-scale": (["montecarlo", "--init-scale", "-1", "--out", "{A}/new"],
                      "init_scale must be a finite scalar > 0"),
    "mc-trials": (["montecarlo", "--trials", "0", "--out", "{A}/new"], "trials must be a positive integer, got 0"),
    "mc-rules-empty": (["montecarlo", "--rules", ",", "--out", "{A}/new"], "--rules ',' names no rule"),
    "mc-range": (["montecarlo", "--rho-range", "3,1", "--out", "{A}/new"], "lo < hi, got (3.0, 1.0)"),
    "mc-flag-type": (["montecarlo", "--max-steps", "x", "--out", "{A}/new"],
                     "max_steps='x' cannot be parsed as int"),
    "mc-flag-choice": (["montecarlo", "--init", "uniform", "--out", "{A}/new"], "invalid choice: 'uniform'"),
    "mc-missing-out": (["montecarlo"], "the following arguments are required: --out"),
    # train: every config field range-checked; nothing of an existing run touched, --overwrite or not
    "train-mlp-ratio": (["train", "--config", "{A}/tiny.py", "--out", "{A}/run", "--overwrite",
                         "--set", "mlp_ratio=-1"],
                        "mlp_ratio must be a finite number > 0, got -1.0"),
    "train-weight-decay-inf": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new", "--set", "weight_decay=1e999"],
                               "weight_decay must be a finite number >= 0, got inf"),
    "train-mask-aspect": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new", "--set", "mask_aspect=1"],
                          "mask_aspect=['1'] must have 2 entries"),
    "train-mask-blocks": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new", "--set", 'mask_blocks=(8,"a")'],
                          "mask_blocks='a' cannot be parsed as int"),
    "train-probe-lr": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new", "--set", "probe_lr=-1e3"],
                       "probe_lr must be a finite number > 0, got -1000.0"),
    "train-unknown-key": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new", "--set", "stepz=3"],
                          "unknown config key 'stepz'"),
    "train-lists-without-video": (["train", "--config", "{A}/tiny.py", "--out", "{A}/new",
                                   "--set", "train_lists=a.txt"],
                                  "train_lists, heldout_lists and list_weights are for dataset='video'"),
    "train-existing-run": (["train", "--config", "{A}/tiny.py", "--out", "{A}/run"],
                           "continue that run with --resume {A}/run, or pass --overwrite"),
    "train-num-devices": (["train", "--config", "{A}/tiny.py", "--out", "{A}/run", "--overwrite",
                           "--set", "num_devices=3"],
                          "batch_size=4 is not divisible by the 3 devices"),
    "train-missing-list": (["train", "--config", "{A}/tiny.py", "--out", "{A}/run", "--overwrite", "--set",
                            "dataset=video", "--set", "train_lists={A}/nowhere.txt"], "'{A}/nowhere.txt' does not exist"),
    "train-no-readable-video": (["train", "--config", "{A}/tiny.py", "--out", "{A}/run", "--overwrite", "--no-probe",
                                 "--set", "dataset=video", "--set", "train_lists={A}/nolist.txt"],
                                "none of the 2 videos in list '{A}/nolist.txt' is readable"),
    "train-out-proc": (["train", "--config", "{A}/tiny.py", "--out", "/proc/run"], "'/proc' is not writable"),
    "train-resume-invalid-json": (["train", "--resume", "{A}/badjson"],
                                  "{A}/badjson/config.json is not valid JSON (line"),
    "train-resume-wrong-type": (["train", "--resume", "{A}/wrongtype"],
                                "{A}/wrongtype/config.json: steps='4' must be INT"),
    "train-resume-shape-mismatch": (["train", "--resume", "{A}/reshaped", "--no-probe"],
                                    "checkpoint 4 in {A}/reshaped/checkpoints does not match the run's config"),
    "train-resume-all-corrupt": (["train", "--resume", "{A}/allcorrupt", "--no-probe"],
                                 "none of the committed checkpoints [2, 4] in {A}/allcorrupt/checkpoints can be read"),
    "train-resume-overwrite": (["train", "--resume", "{A}/run", "--overwrite"], "do not combine it with"),
    # probe: settings only; missing steps named
    "probe-missing-step": (["probe", "--ckpt", "{A}/run/checkpoints/99"],
                           "the complete ones in {A}/run/checkpoints are steps [2, 4]"),
    "probe-not-a-run": (["probe", "--ckpt", "{A}/full"], "{A}/full is neither a run directory"),
    "probe-set-width": (["probe", "--ckpt", "{A}/run", "--set", "width=128"], "width is not a probe setting"),
    "probe-set-lr": (["probe", "--ckpt", "{A}/run", "--set", "probe_lr=-1e3"], "probe_lr must be a finite number > 0"),
    # reproduce, integrability
    "reproduce-only-empty": (["reproduce", "--only", ",", "--out", "{A}/new"], "--only ',' names no claim"),
    "reproduce-only-unknown": (["reproduce", "--only", "prop9.9", "--out", "{A}/new"],
                               "unknown claim(s) ['prop9.9']"),
    "reproduce-out-proc": (["reproduce", "--only", "prop4.11", "--out", "/proc/rep"],
                           "'/proc' is not writable"),
    "reproduce-out-non-empty": (["reproduce", "--only", "prop4.11", "--out", "{A}/full"], "is not empty"),
    "integrability-mlp-linear-flags": (["integrability", "--model", "mlp", "--m", "3", "--kind", "aug"],
                                       "--m, --kind apply to the linear model only"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_changes_nothing(area, case, capsys):
    argv, needle = CASES[case]
    argv = [a.replace("{A}", str(area)) for a in argv]
    before = _snapshot(area)
    assert cli.main(argv) == errors.BAD_INPUT
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("dualjax")]
    # in-process only, orbax's async restore can leave an "Exception ignored in: ... Event loop is
    # closed" report of a callback after a failed restore (a real process shows none): not ours
    assert err.count("Traceback") == err.count("Exception ignored in") and len(lines) == 1, err
    assert lines[0].startswith(f"dualjax {argv[0]}: error: "), err
    assert needle.replace("{A}", str(area)) in lines[0], err
    assert _snapshot(area) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_unwritable_folder_is_refused_first(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert cli.main(["montecarlo", "--trials", "1000000", "--out", str(locked / "mc")]) == 2
    assert "is not writable (Permission denied)" in capsys.readouterr().err


# --------------------------------------------------------------------------- data loss, end to end

def test_failed_fresh_run_with_overwrite_leaves_the_old_run_intact(area):
    """Defect 1 in a real process: the set-up fails after --overwrite was accepted, yet the old
    run (config.json, metrics, checkpoints) is untouched and still resumable."""
    before = _snapshot(area)
    proc = _dualjax("train", "--config", area / "tiny.py", "--out", area / "run", "--overwrite",
                    "--set", "num_devices=3", cache=area / "xla-cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dualjax train: error: batch_size=4 is not divisible by the 3 devices" in proc.stderr
    assert _snapshot(area) == before


def test_resume_sets_a_corrupt_newest_checkpoint_aside_and_writes_it_again(area, tmp_path, capsys):
    """Defect 2: the newest checkpoint of a finished run is damaged; the resume falls back to
    step 2, moves checkpoint 4 aside (named in the log, counted in the metrics) and writes a new
    checkpoint 4, which ``probe`` then reads."""
    run = tmp_path / "run"
    shutil.copytree(area / "run", run)
    damaged = _truncate_largest(run / "checkpoints" / "4")
    proc = _dualjax("train", "--resume", run, "--no-probe", "--no-progress", cache=area / "xla-cache")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"checkpoint {run}/checkpoints/4 is unreadable" in proc.stderr
    assert "checkpoint 4 set aside as 4.corrupt-1; resuming from step 2" in proc.stderr
    assert checkpoint.committed_steps(run / "checkpoints") == [2, 4]
    assert checkpoint.set_aside_steps(run / "checkpoints") == ["4.corrupt-1"]
    assert (run / "checkpoints" / "4.corrupt-1" / damaged.relative_to(run / "checkpoints" / "4")).is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    old = [json.loads(line) for line in (area / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert [r["checkpoints_set_aside"] for r in records] == [0, 0, 1, 1]
    for new, ref in zip(records[2:], old[2:]):  # steps 2, 3 retrained from checkpoint 2: the same numbers
        assert {k: v for k, v in new.items() if k not in ("clips_per_s", "checkpoints_set_aside")} == \
               {k: v for k, v in ref.items() if k not in ("clips_per_s", "checkpoints_set_aside")}
    assert cli.main(["probe", "--ckpt", str(run)]) == 0
    assert json.loads((run / "probe.json").read_text())["step"] == 4
    capsys.readouterr()


def test_probe_falls_back_past_a_corrupt_newest_checkpoint_without_moving_it(area, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(area / "run", run)
    _truncate_largest(run / "checkpoints" / "4")
    assert cli.main(["probe", "--ckpt", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"dualjax probe: checkpoint {run}/checkpoints/4 is unreadable" in err and "Traceback" not in err
    result = json.loads((run / "probe.json").read_text())
    assert result["step"] == 2 and result["checkpoint"].endswith("checkpoints/2")
    assert checkpoint.committed_steps(run / "checkpoints") == [2, 4]  # read-only: nothing set aside
    assert not list(run.glob(".*.tmp-*"))  # probe.json was renamed into place


KILL_BEFORE_SUMMARY = textwrap.dedent("""
    import os, signal
    _replace = os.replace
    def replace(src, dst):
        if os.path.basename(dst) == "summary.json":
            os.kill(os.getpid(), signal.SIGKILL)  # after trials.csv is in place, before the summary
        return _replace(src, dst)
    os.replace = replace
""")


def test_montecarlo_killed_before_its_summary_leaves_a_recognisably_incomplete_folder(area, tmp_path, capsys):
    """Defect 3: SIGKILL between the CSV and the summary. The CSV is complete (written under a
    temporary name, then renamed), summary.json is absent, so the folder reads as incomplete;
    a re-run is refused until --overwrite, which completes it."""
    out = tmp_path / "mc"
    proc = _dualjax("montecarlo", *MC, "--engine", "fast", "--out", out, cache=area / "xla-cache",
                    prelude=KILL_BEFORE_SUMMARY)  # the XLA engine compiles faster than the kernel in a child
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    with open(out / "trials.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 80  # complete: 40 trials x 2 rules
    assert not (out / "summary.json").exists() and list(out.glob(".summary.json.tmp-*"))
    assert not outputs.is_complete(out, "summary.json")
    assert cli.main(["montecarlo", *MC, "--out", str(out)]) == 2
    assert "is not empty (.summary.json.tmp-" in capsys.readouterr().err
    assert cli.main(["montecarlo", *MC, "--out", str(out), "--overwrite"]) == 0
    assert outputs.is_complete(out, "summary.json") and sorted(p.name for p in out.iterdir()) == [
        "summary.json", "trials.csv"]


# --------------------------------------------------------------------------- stale results, strict JSON

def test_overwrite_clears_what_montecarlo_owns_and_summary_is_strict_json(tmp_path, capsys):
    """Old figures do not survive a re-run with --overwrite (a user's file does); a share of no
    trials (here no trial has Δ ≥ 0) is null in summary.json, listed under non_finite; the console
    shows the diverged fraction."""
    out = tmp_path / "mc"
    out.mkdir()
    (out / "energy.png").write_bytes(b"old figure")
    (out / "summary.json").write_text('{"old": NaN}')
    (out / "notes.txt").write_text("mine")
    args = ["montecarlo", *MC, "--rho-range", "2.5,3", "--tau-range=-0.2,0.2", "--lam-range", "0.09,0.1",
            "--out", str(out)]
    assert cli.main(args) == 2
    assert "is not empty (energy.png, notes.txt, summary.json)" in capsys.readouterr().err
    assert cli.main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "summary.json", "trials.csv"]
    text = (out / "summary.json").read_text()
    summ = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))
    sg = summ["rules"]["sg"]
    assert sg["delta_nonneg"]["count"] == 0 and sg["fractions_given_delta_nonneg"]["outer"]["fraction"] is None
    assert summ["non_finite"]["values"]["rules.sg.fractions_given_delta_nonneg.outer.fraction"] == "nan"
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["rules"]["sg"]) >= {"outer", "origin", "diverged"}


def test_overwrite_of_a_run_clears_what_train_owns(area, tmp_path):
    """A fresh run over an old one: refused with a hint; with overwrite the old config, metrics,
    checkpoints and probe.json go (nothing stale), other files stay, config.json is the new one."""
    import dataclasses

    from dualjax.vjepa import rundir

    run = tmp_path / "run"
    shutil.copytree(area / "run", run)
    (run / "probe.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    cfg = rundir.read_config(run)
    new = dataclasses.replace(cfg, steps=6)
    with pytest.raises(ValueError, match="continue that run with --resume"):
        rundir.check(run, new, resume=False)
    rundir.check(run, new, resume=False, overwrite=True)
    rundir.prepare(run, new, resume=False, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "notes.txt"]
    assert rundir.read_config(run) == new


def test_resume_without_checkpoints_says_it_starts_from_step_0(tmp_path):
    from dualjax import rules
    from dualjax.vjepa import rundir
    from dualjax.vjepa.step import TrainState

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("dualjax")
    logger.addHandler(handler)
    try:
        state = TrainState({}, {}, (), rules.TeacherState({}, 0), 0, 0)
        with rundir.checkpointer(tmp_path) as ckpt:
            assert rundir.resume(ckpt, state) == (0, state, 0)
    finally:
        logger.removeHandler(handler)
    assert any(f"no complete checkpoint in {tmp_path}/checkpoints: starting from step 0" in r.getMessage()
               for r in records)


# --------------------------------------------------------------------------- exit codes

def test_exit_codes_failures_bugs_and_debug(monkeypatch, capsys):
    from dualjax.commands import equilibria

    def fail(err):
        def run(args):
            raise err
        monkeypatch.setattr(equilibria, "run", run)

    fail(errors.Failure("the study diverged"))
    assert cli.main(["equilibria"]) == errors.FAILURE
    assert capsys.readouterr().err == "dualjax equilibria: error: the study diverged\n"
    fail(OSError(28, "No space left on device", "/full/disk"))
    assert cli.main(["equilibria"]) == errors.FAILURE
    assert "dualjax equilibria: error: [Errno 28] No space left on device: '/full/disk'" in capsys.readouterr().err
    fail(KeyError("bug"))
    assert cli.main(["equilibria"]) == errors.FAILURE
    err = capsys.readouterr().err
    assert err.startswith("dualjax equilibria: internal error: KeyError") and "--debug" in err and "Traceback" not in err
    assert cli.main(["equilibria", "--debug"]) == errors.FAILURE
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    fail(ValueError("m=0 is not allowed"))
    monkeypatch.setenv("DUALJAX_DEBUG", "1")
    assert cli.main(["equilibria"]) == errors.BAD_INPUT
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("dualjax equilibria: error: m=0 is not allowed\n")
