"""Every ```python block of README.md and docs/recipes.md runs as written (each block on its own, in a
fresh namespace, in a subprocess: the blocks enable float64 globally, as a reader's script would)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "recipes.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

RUNNER = """
import sys, time
blocks = {blocks!r}
for i, code in enumerate(blocks):
    t = time.perf_counter()
    exec(compile(code, f"{name} block {{i + 1}}", "exec"), {{"__name__": "__main__"}})
    print(f"block {{i + 1}}: {{time.perf_counter() - t:.1f}} s", file=sys.stderr)
"""


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


def test_the_docs_have_code_blocks():
    assert len(blocks(DOCS[0])) >= 1 and len(blocks(DOCS[1])) >= 5


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path):
    script = RUNNER.format(blocks=blocks(path), name=path.name)
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
