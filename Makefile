# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export VENV
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test unit sanity lint molecule bench docs lab-start lab-stop clean

venv: $(STAMP)

# Reinstall when a requirements file changes; the lab is installed editable so `python -m ceops_lab` works.
# AWX's credential types (tests/integration/requirements-awx.txt) come without their dependencies.
$(STAMP): requirements.txt requirements-dev.txt lab/pyproject.toml tests/integration/requirements-awx.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e ./lab
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r tests/integration/requirements-awx.txt
	touch $@

demo: venv
	scripts/demo.sh

test: venv
	scripts/test.sh

unit: venv
	scripts/test.sh pytest

sanity: venv
	scripts/test.sh sanity

lint: venv
	scripts/test.sh lint

molecule: venv
	scripts/test.sh molecule

# The fleet benchmark (docs/benchmark.md): make bench ARGS='--tenants 50'. It needs what the collection needs at run time,
# ansible-core, the lab and matplotlib, not the development tools: on a clean clone it installs only those into the venv
# (make test adds the rest to the same venv). The ansible-core line is requirements-dev.txt's, so both test one version.
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): requirements.txt requirements-dev.txt bench/requirements.txt lab/pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r bench/requirements.txt \
		"$$(grep '^ansible-core' requirements-dev.txt)" -e ./lab
	touch $@

bench: $(BENCH_STAMP)
	scripts/bench.sh $(ARGS)

# Generate the collection's docs from the code (docs/collection) and lint them.
docs: venv
	scripts/docs.sh

lab-start: venv
	$(VENV)/bin/python -m ceops_lab start

lab-stop: venv
	$(VENV)/bin/python -m ceops_lab stop

clean:
	-$(VENV)/bin/python -m ceops_lab stop
	rm -rf $(VENV) .lab tests/output .pytest_cache
