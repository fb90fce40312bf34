# Two commands on a fresh machine (python3 and make only):
#   make reproduce   -- the quick reproduction of the paper's claims (writes runs/quick/)
#   make test        -- the whole test suite
#   make notebooks   -- execute notebooks/*.py at small sizes into notebooks/*.ipynb with their outputs
#   make notebook    -- JupyterLab on notebooks/ (the optional `notebook` extra)
# Each bootstraps .venv on first use (pinned versions from pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
NBSTAMP := $(VENV)/.notebook-stamp
NOTEBOOKS := $(wildcard notebooks/*.py)
OUT    ?= runs/quick

# Dense eigenvalue problems are 6x faster single-threaded here; 8 simulated
# CPU devices need more threads than devices (XLA collectives deadlock otherwise).
export OPENBLAS_NUM_THREADS := 1
export XLA_FLAGS := --xla_force_host_platform_device_count=8
export NPROC := 16
export MPLBACKEND ?= Agg

.PHONY: reproduce test venv clean notebooks notebook

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

$(NBSTAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,notebook]'
	touch $(NBSTAMP)

# Small sizes (DUALJAX_NOTEBOOK_SMALL), the inline backend (this file exports Agg, which would
# leave plt.show() with nothing to show), outputs kept in the .ipynb next to each .py.
notebooks: $(NBSTAMP)
	@tmp=$$(mktemp -d); for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  DUALJAX_NOTEBOOK_SMALL=1 DUALJAX_NOTEBOOK_OUT=$$tmp MPLBACKEND=module://matplotlib_inline.backend_inline \
	    $(VENV)/bin/jupytext --to ipynb --execute --run-path $$tmp $$nb || exit 1; \
	done; rm -rf $$tmp

notebook: $(NBSTAMP)
	MPLBACKEND=module://matplotlib_inline.backend_inline $(VENV)/bin/jupyter lab notebooks/

reproduce: $(STAMP)
	$(VENV)/bin/dualjax reproduce --out $(OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15 tests

clean:
	rm -rf $(VENV) runs
