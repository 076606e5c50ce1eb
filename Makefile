# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
STAMP_BENCH := $(VENV)/.installed-bench
export LEDGER_TEST_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: run test lint bench soak venv dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Strict editable installs link each module file: adding or removing one (a directory's mtime changes)
# needs a reinstall.
PACKAGE_DIRS := $(shell find src projections api -type d -not -name __pycache__ 2>/dev/null)

$(STAMP_DEV): pyproject.toml $(PACKAGE_DIRS) | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=strict
	touch $@ $(STAMP_RUN)

venv: $(STAMP_RUN)
dev: $(STAMP_DEV)

# Seed the demo city if the ledger is empty, issue DEMO keys (printed with example curl lines), serve on
# PORT (default 8000; `serve` refuses a port another server holds before it says it is serving).
DEMO_SCALE ?= small

PORT ?= 8000

run: $(STAMP_RUN)
	$(BIN)/ledger demo --if-empty --scale $(DEMO_SCALE)
	$(BIN)/ledger keys demo --base-url http://127.0.0.1:$(PORT)
	$(BIN)/ledger serve --host 127.0.0.1 --port $(PORT)

# Two test processes (pytest-xdist): on a 2-core machine pytest took 905 s in one process, over CI's
# 15 minutes with lint and the wheel, and 649-713 s in two (docs/decisions.md).
TEST_WORKERS ?= 2

# The console's browser tests (tests/browser/) drive Debian's chromium through its chromedriver. `browser`
# installs both with apt-get when they are missing and we are root; otherwise it says what is missing.
# With LEDGER_REQUIRE_BROWSER=1 (CI) a browser that cannot be had fails the target, and the tests fail
# rather than skip; without it the target is best-effort and the tests skip, saying why.
# BROWSER_FONTS=1 adds a CJK font (fonts-wqy-microhei) for the screenshots of docs/console.md.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
BROWSER_PACKAGES := chromium chromium-driver $(if $(filter 1,$(BROWSER_FONTS)),fonts-wqy-microhei)

browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] && [ "$(BROWSER_FONTS)" != 1 ]; then \
		echo "browser: $(CHROMIUM) and $(CHROMEDRIVER) present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser: apt-get install $(BROWSER_PACKAGES)"; \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES) \
		  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		       --no-install-recommends $(BROWSER_PACKAGES); } ) >/tmp/ledger-browser-apt.log 2>&1 \
		|| { echo "browser: apt-get failed (/tmp/ledger-browser-apt.log)"; \
		     [ "$$LEDGER_REQUIRE_BROWSER" != 1 ] || exit 1; }; \
	else \
		echo "browser: no $(CHROMIUM) or $(CHROMEDRIVER), and no root apt-get to install them"; \
		[ "$$LEDGER_REQUIRE_BROWSER" != 1 ] || exit 1; \
	fi

test: $(STAMP_DEV) $(if $(filter 1,$(LEDGER_REQUIRE_BROWSER)),browser)
	$(BIN)/pytest -q -n $(TEST_WORKERS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check src projections api tests benchmarks
	$(BIN)/ruff format --check src projections api tests benchmarks
	$(BIN)/mypy
	$(BIN)/mypy benchmarks soak

# The dev install plus matplotlib (the growth plot); strict editable like `dev`, so benchmarks see src/.
$(STAMP_BENCH): $(STAMP_DEV)
	$(BIN)/pip install -q -e '.[dev,bench]' --config-settings editable_mode=strict
	touch $@

# SPEC §11's targets beside their baselines, one table (docs/performance.md). The demo city is built once
# into benchmarks/.cache/ and reused; BENCH_ARGS=--growth-10m adds the 10M-event growth point (slow).
bench: $(STAMP_BENCH)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# A bounded mixed read/write load against a real `ledger serve` for SOAK_SECONDS (default 60): latency by
# route, errors by status, throughput and the server's memory (docs/reliability.md). Not run in CI.
soak: $(STAMP_DEV)
	$(BIN)/python -m soak.soak

clean:
	rm -rf $(VENV) build dist *.egg-info
