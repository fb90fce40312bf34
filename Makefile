# Two commands on a fresh machine (python3 and make only):
#   make reproduce   -- the quick reproduction of the paper's claims (writes runs/quick/)
#   make test        -- the whole test suite
# Each bootstraps .venv on first use (pinned versions from pyproject.toml).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= runs/quick

# Dense eigenvalue problems are 6x faster single-threaded here; 8 simulated
# CPU devices need more threads than devices (XLA collectives deadlock otherwise).
export OPENBLAS_NUM_THREADS := 1
export XLA_FLAGS := --xla_force_host_platform_device_count=8
export NPROC := 16
export MPLBACKEND ?= Agg

.PHONY: reproduce test venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/dualjax reproduce --out $(OUT) --overwrite

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs
