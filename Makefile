# `make dashboard` and `make test` each install what they need into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)

.PHONY: dashboard test lint demo bench chromium

$(STAMP): requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $@

dashboard: $(STAMP)
	$(PY) -m streamlit run dashboard/app.py

# Debian's chromium for the browser test (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing: sudo apt-get install -y chromium (the browser test needs it)"; fi; }

test: $(STAMP) chromium
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

demo: $(STAMP)
	$(PY) -m sdl demo --out assets/demo

bench: $(STAMP)
	$(PY) benchmarks/bench_losses.py
