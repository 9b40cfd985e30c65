# make test: create .venv if missing, install lstm_jax with its test extras, run pytest.
# make demo: the same set-up, then the main job.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

demo: $(STAMP)
	$(BIN)/lstm-jax train adding

bench: $(STAMP)
	$(BIN)/lstm-jax bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
