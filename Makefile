# The two set-up commands: `make test` and `make demo`. Both build .venv when it is
# missing or older than pyproject.toml.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo lab clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m lab demo --out runs/demo

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-demo:
	rm -rf runs/demo
