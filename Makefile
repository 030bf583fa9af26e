# The two commands a newcomer needs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
export VENV
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test unit sanity lint cores molecule bench docs lab-start lab-stop clean

venv: $(STAMP)

# Virtualenvs are made by scripts/venv.sh, which first installs Debian's python3.X-venv with apt where python3 cannot
# make one (as root or with passwordless sudo; README.md). The lab is installed editable so `python -m ceops_lab` works.

# What make demo needs, and no more: the collection's runtime requirements, ansible-core as make test tests it, the lab.
RUNTIME_STAMP := $(VENV)/.runtime-stamp
$(RUNTIME_STAMP): requirements.txt requirements-dev.txt lab/pyproject.toml
	PYTHON=$(PYTHON) scripts/venv.sh $(VENV) -r requirements.txt "$$(grep '^ansible-core' requirements-dev.txt)" -e ./lab
	touch $@

# The development and test tools on top, within the upper bounds of constraints-dev.txt; AWX's credential types
# (tests/integration/requirements-awx.txt) without their dependencies.
$(STAMP): requirements.txt requirements-dev.txt constraints-dev.txt lab/pyproject.toml tests/integration/requirements-awx.txt
	PYTHON=$(PYTHON) scripts/venv.sh $(VENV) -r requirements-dev.txt -c constraints-dev.txt -e ./lab
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r tests/integration/requirements-awx.txt
	touch $@

demo: $(RUNTIME_STAMP)
	scripts/demo.sh

test: venv
	scripts/test.sh

unit: venv
	scripts/test.sh pytest

sanity: venv
	scripts/test.sh sanity

lint: venv
	scripts/test.sh lint

# The other ansible-core releases of meta/runtime.yml's range, each in a venv of its own (scripts/cores.sh).
cores: venv
	scripts/test.sh cores

molecule: venv
	scripts/test.sh molecule

# The fleet benchmark (docs/benchmark.md): make bench ARGS='--tenants 50'. It needs what make demo needs and matplotlib,
# not the development tools (make test adds those to the same venv).
BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): $(RUNTIME_STAMP) bench/requirements.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: $(BENCH_STAMP)
	scripts/bench.sh $(ARGS)

# Generate the collection's docs from the code (docs/collection) and lint them.
docs: venv
	scripts/docs.sh

lab-start: $(RUNTIME_STAMP)
	$(VENV)/bin/python -m ceops_lab start

lab-stop: $(RUNTIME_STAMP)
	$(VENV)/bin/python -m ceops_lab stop

clean:
	-$(VENV)/bin/python -m ceops_lab stop
	rm -rf $(VENV) .lab tests/output .pytest_cache
