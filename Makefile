# make demo: create .venv if missing, install lstm_jax alone (no torch), run the main job.
# make test: the same .venv, plus the test extras (pytest, hypothesis, torch CPU), run the
# fast tier of the tests (all but those marked slow); make test-all: both tiers.
# Each set-up has its own stamp, remade when pyproject.toml changes, so `make demo`
# followed by `make test` adds the test extras, and `make test` then `make demo` installs
# nothing new.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: test test-all demo bench data results clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# the test extras include everything the demo needs: both stamps are then up to date
# jax2onnx without its pinned dependencies (lstm_jax/_extras.py NO_DEPS says why)
$(TEST_STAMP): pyproject.toml lstm_jax/_extras.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps $$($(BIN)/python -c "from lstm_jax._extras import NO_DEPS; print(*NO_DEPS.values())")
	touch $@ $(DEMO_STAMP)

# pyproject.toml's addopts leave out the tests marked slow; -m "slow or not slow" puts them back
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -q

test-all: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -q -m "slow or not slow"

demo: $(DEMO_STAMP)
	$(BIN)/lstm-jax train adding

# the experiments' data: Debian packages (one line per source, installed only when missing),
# then the `experiments` extra into the venv
data: | $(BIN)/python
	dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || $(SUDO) apt-get install -y dataset-fashion-mnist
	dpkg -s bible-kjv >/dev/null 2>&1 || $(SUDO) apt-get install -y bible-kjv
	$(BIN)/python -m pip install --quiet -e ".[experiments]"

# every experiment's row of experiments/RESULTS.md: hours on 2 CPU cores; run it again to
# continue. `lstm-jax results` alone re-renders the table from the committed summaries.
results: data
	for name in $$($(BIN)/python -c "from lstm_jax.train import experiments; print(*experiments.shipped())"); do \
		$(BIN)/lstm-jax reproduce $$name || exit $$?; \
	done

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
