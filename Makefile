# The README's two commands: `make demo` (the main job on the quick profile) and `make test`.
# Both create .venv in the checkout and install requirements.txt when it is missing or stale.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= config.py
# Extra overrides for the demo, e.g. make demo DEMO_SET="--set SNR=1"
DEMO_SET ?=

.PHONY: demo test test-all install clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

# A step that exits with status 3 has nothing to do yet (e.g. the R statistics without a
# metrics.csv): the demo says so and goes on.
STEP = run_step() { "$$@"; rc=$$?; if [ $$rc -eq 3 ]; then echo "(skipped: not built yet)"; return 0; fi; return $$rc; }; run_step

demo: $(STAMP)
	@$(STEP) $(PY) simulate_data.py --config $(CONFIG) $(DEMO_SET)
	@$(STEP) $(PY) train_network.py --config $(CONFIG) $(DEMO_SET)
	@$(STEP) $(PY) predict.py --config $(CONFIG) $(DEMO_SET)
	@$(STEP) $(PY) visualize_predictions.py --config $(CONFIG) $(DEMO_SET)
	@$(STEP) $(PY) -m meg_unet.cli analyze --config $(CONFIG) $(DEMO_SET)
	@$(STEP) $(PY) -m meg_unet.cli events --config $(CONFIG) $(DEMO_SET)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

clean-venv:
	rm -rf $(VENV)
