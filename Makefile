# The two commands of the quick start. Each bootstraps .venv by itself, idempotently: the stamp file
# is rebuilt only when pyproject.toml changes, so the second run starts at once.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: run test lint bench bench-api bench-dns bench-proxy bench-hardening bench-workloads bench-kubelet bench-gateway bench-flows bench-churn bench-startup clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/python -m emulator serve $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

# Benchmarks compare against a peer run side by side (need Debian's wrk, haproxy, dnsperf, dnsmasq).
bench: bench-api bench-dns bench-proxy bench-hardening bench-workloads bench-kubelet bench-gateway bench-flows bench-churn bench-startup

bench-api: $(STAMP)
	$(VENV)/bin/python bench/api/run.py $(ARGS)

bench-dns: $(STAMP)
	$(VENV)/bin/python bench/dns/run.py $(ARGS)

bench-proxy: $(STAMP)
	$(VENV)/bin/python bench/proxy/run.py $(ARGS)

bench-hardening: $(STAMP)
	$(VENV)/bin/python bench/hardening/run.py $(ARGS)

bench-workloads: $(STAMP)
	$(VENV)/bin/python bench/workloads/run.py $(ARGS)

bench-kubelet: $(STAMP)
	$(VENV)/bin/python bench/kubelet/run.py $(ARGS)

bench-gateway: $(STAMP)
	$(VENV)/bin/python bench/gateway/run.py $(ARGS)

bench-flows: $(STAMP)
	$(VENV)/bin/python bench/flows/run.py $(ARGS)

bench-churn: $(STAMP)
	$(VENV)/bin/python bench/churn/run.py $(ARGS)

bench-startup: $(STAMP)
	$(VENV)/bin/python bench/startup/run.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
