"""Every notebook runs top to bottom at small sizes, and each .ipynb is in sync with its .py twin and
readable without running: executed by `make notebooks`, every figure inline, no error."""

from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


def _code(nb):
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"]


def _draws(source: str) -> bool:
    return "plt.show()" in source or "display(Image(" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_paired_and_readable(path):
    ipynb = path.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run `make notebooks`"
    nb = nbformat.read(ipynb, as_version=4)
    assert _code(nb) == _code(jupytext.read(path)), f"{ipynb.name} is out of sync with {path.name}: run `make notebooks`"
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert any(c.get("outputs") for c in cells), f"{ipynb.name} has no outputs: run `make notebooks`"
    for c in cells:  # figures inline (the Agg backend would leave plt.show() with nothing)
        if _draws(c.source):
            assert any("image/png" in o.get("data", {}) for o in c.outputs), \
                f"{ipynb.name}: a figure cell has no image ({c.source[:50]!r}...): run `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("DUALJAX_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("DUALJAX_NOTEBOOK_OUT", str(tmp_path))
    nb = jupytext.read(path)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
