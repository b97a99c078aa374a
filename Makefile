# Two commands for a newcomer: `make demo` and `make test`. Everything they need
# is installed here: Debian packages through apt-get, Python packages into .venv.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config.example.toml

# The parts of a cluster (tests/test_cluster.py, make cluster-demo): PostgreSQL 15 and HAProxy.
CLUSTER_DEBS := postgresql-15 haproxy
# A real RTSP test camera (GStreamer, run by Debian's python3) and real browsers:
# Chromium, and Firefox ESR (which, offline, offers VP8/VP9/AV1 and no H.264);
# coturn, a real TURN server for the relay and weak-link tests.
TEST_DEBS := gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly \
	gstreamer1.0-plugins-bad gstreamer1.0-tools chromium firefox-esr coturn $(CLUSTER_DEBS)

.PHONY: demo cluster-demo test bench lint format debs cluster-debs install-debs clean

demo: $(VENV)/.installed web/node_modules/.installed
	$(PY) -m gateway --config $(CONFIG) --demo

# Two gateway nodes on the demo cameras behind HAProxy, sharing a throw-away
# PostgreSQL (deploy/local_cluster.py); prints the links. Needs root for apt-get and
# to run PostgreSQL as the postgres user.
cluster-demo: cluster-debs $(VENV)/.installed web/node_modules/.installed
	$(PY) deploy/local_cluster.py

test: debs $(VENV)/.installed-test web/node_modules/.installed tests/players/node_modules/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# Issue 5's benchmark (not part of `make test`): a real RTSP camera, the gateway as its
# own process, aiortc viewers and headless Chromium; ~35 min on 2 cores with every phase
# (12 of them the soak).
# BENCH_ARGS=--quick for a shorter smoke run. Writes bench/results.json and .md.
bench: debs $(VENV)/.installed-test web/node_modules/.installed
	$(VENV)/bin/pip install -q py-spy
	$(PY) bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check gateway tests bench
	$(VENV)/bin/ruff format --check gateway tests bench

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix gateway tests
	$(VENV)/bin/ruff format gateway tests

debs:
	@$(MAKE) --no-print-directory install-debs DEBS="$(TEST_DEBS)"

cluster-debs:
	@$(MAKE) --no-print-directory install-debs DEBS="$(CLUSTER_DEBS)"

install-debs:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Leaflet and friends, pinned in web/package-lock.json, served as they ship.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

# Test-only npm packages (tests/players/package-lock.json): puppeteer-core drives
# Debian's firefox-esr (it never downloads a browser), esbuild bundles the
# third-party WHEP players the tests load in Chromium.
tests/players/node_modules/.installed: tests/players/package.json tests/players/package-lock.json
	cd tests/players && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache web/node_modules tests/players/node_modules
