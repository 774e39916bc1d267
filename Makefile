# hipbridge — two commands on a fresh machine:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

DEMO_DAYS  ?= 3
DEMO_SCALE ?= 0.02

.PHONY: venv demo test lint bench bench-transfer bench-mapping bench-quality bench-deletion bench-display clean

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) -m hipbridge.cli demo run --days $(DEMO_DAYS) --scale $(DEMO_SCALE)
	$(PY) -m hipbridge.cli display demo

# Two steps: the suite, then the distributed test (tests/test_distributed.py: Airflow's components and two
# Celery workers as local processes), which the first step deselects. Either step failing fails the
# target, including pytest's exit code 5 when a step collected no test.
test: venv
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q -m distributed tests

lint: venv
	$(VENV)/bin/ruff check plugins dags tests bench

bench: bench-transfer

bench-transfer: venv
	$(PY) bench/transfer.py $(if $(ROWS),--rows $(ROWS),) $(if $(SKIP_DLT),--skip-dlt,)

bench-mapping: venv
	$(PY) bench/mapping.py

bench-quality: venv
	$(PY) bench/quality.py

bench-deletion: venv
	$(PY) bench/deletion.py

bench-crypto: venv
	$(PY) bench/crypto.py

bench-display: venv
	$(PY) bench/display.py

clean:
	rm -rf .hipbridge
