"""The package works without the repository around it (issue 12: a non-editable install).

An installed ``dualjax`` is its ``.py`` files and nothing else (no ``experiments/``, no data files
that ``pyproject.toml`` does not declare). We copy exactly that into a temporary folder, put it
first on ``PYTHONPATH`` and run the commands from another folder, so that any lookup relative to
the repository (presets, figures, report templates) fails here as it would after ``pip install .``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    for src in (ROOT / "dualjax").rglob("*.py"):
        dst = site / src.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), DUALJAX_NO_CACHE="1")
    code = "import sys, dualjax; from dualjax.cli import main; print('dualjax from', dualjax.__file__); sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_reproduce_and_train_run_from_a_plain_copy_of_the_package(installed, tmp_path):
    rep = _run(installed, tmp_path, "reproduce", "--only", "prop4.11", "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert f"dualjax from {installed}" in rep.stdout
    assert (tmp_path / "rep" / "report.json").is_file()

    run = _run(installed, tmp_path, "train", "--config", "tiny", "--out", str(tmp_path / "run"),
               "--set", "steps=2", "--set", "warmup_steps=1", "--set", "depth=1", "--set", "pred_depth=1",
               "--no-probe", "--no-progress")  # one block each: the preset is found, the run is cheap
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") >= 1
