# The two commands of the README: `make bench` (main job) and `make test` (test suite).
# Both create/refresh the virtual environment .venv first (idempotent, fast when up to date).
VENV ?= .venv
PY := $(VENV)/bin/python
SEEDS ?= 0
ARGS ?=

.PHONY: setup bench test
setup:
	@LPD_VENV=$(VENV) bash scripts/setup_env.sh

bench: setup
	$(VENV)/bin/lpd-bench run --all --seeds $(SEEDS) $(ARGS)
	$(VENV)/bin/lpd-bench report

test: setup
	$(PY) -m pytest -q $(ARGS)
