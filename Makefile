# waitress-rs developer interface. `make help` lists the targets.
# `make test` is what CI runs (.ci/run calls exactly it) on a fresh machine that has only the
# stock Rust toolchain and Python 3.11: it creates .venv and installs what it needs itself.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
VPY := $(VENV)/bin/python
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)
CARGO ?= cargo

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.deps: requirements-dev.txt requirements-nodeps.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(VPY) -m pip install -q --no-deps -r requirements-nodeps.txt
	touch $@

# waitress 3.0.2 itself, for tests/compat only: its own venv, never the project's (same
# import name).
COMPAT_VENV := .venv-waitress
$(COMPAT_VENV)/.deps:
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --disable-pip-version-check waitress==3.0.2
	touch $@

.PHONY: venv
venv: $(VENV)/.deps ## create .venv with the pinned tools

.PHONY: build
build: venv ## build the extension (debug) into .venv
	maturin develop --quiet

.PHONY: serve
serve: build ## serve the demo app (examples/demo_app.py) on http://127.0.0.1:8080 until Ctrl-C
	cd examples && waitress-serve --listen=127.0.0.1:8080 demo_app:app

.PHONY: fmt
fmt: venv ## format Rust and Python
	$(CARGO) fmt --all
	ruff format python tests examples bench tools
	ruff check --fix python tests examples bench tools

.PHONY: lint-rust
lint-rust: venv ## rustfmt check and clippy (warnings are errors); pyo3 needs the venv python
	$(CARGO) --version
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test-rust
test-rust: venv ## cargo test (http + server crates, fuzz regressions replayed)
	$(CARGO) test --workspace --locked

.PHONY: lint-python
lint-python: build ## ruff, mypy (strict) on the package, stubtest on the extension
	ruff --version
	ruff check python tests examples bench tools
	ruff format --check python tests examples bench tools
	mypy --version
	mypy
	python -m mypy.stubtest waitress._core --allowlist .mypy-stubtest-allowlist

.PHONY: test-python
test-python: build $(COMPAT_VENV)/.deps ## pytest over real sockets
	pytest --version
	pytest -q -p no:cacheprovider

.PHONY: soak
soak: sysdeps build ## the long reliability runs in tests/soak (a million keep-alive requests, slow-client attacks; ~10 min)
	pytest -q -p no:cacheprovider tests/soak

.PHONY: test
test: sysdeps lint-rust test-rust build lint-python test-python ## everything CI runs

.PHONY: ci
ci: test

FUZZ_SECONDS ?= 60
.PHONY: fuzz-smoke
fuzz-smoke: ## run each cargo-fuzz target for FUZZ_SECONDS (stable toolchain, no sanitizer)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in request_head chunked_decode conn_stream; do \
		mkdir -p corpus/$$t; \
		$(CARGO) fuzz run -s none $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 \
			|| { echo "fuzz target $$t failed: minimise the crash into fuzz/regressions/$$t/"; exit 1; }; \
	done

.PHONY: bench-parse
bench-parse: ## criterion: our head parse and chunked decode against bare httparse
	$(CARGO) bench -p waitress-http --bench parse

# The bench embeds the venv's Python (pyo3 builds against $(VIRTUAL_ENV)) and finds its
# shared libpython through LD_LIBRARY_PATH; it imports `waitress` from this checkout's python/
# (put first on sys.path by the bench), with the _core that `build` put there.
.PHONY: bench-wsgi
bench-wsgi: build ## criterion: environ building and response-head encoding (embedded Python)
	LD_LIBRARY_PATH="$$(python -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		$(CARGO) bench -p waitress-python --features bench --bench wsgi

.PHONY: bench-instructions
bench-instructions: build ## callgrind instruction counts: parse (ours vs bare httparse, per input) and a whole hello request
	$(CARGO) build --release -p waitress-http --example parse_loop
	for input in browser hello chunked; do for what in ours httparse; do \
		base=$$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/parse_loop 0 $$what $$input 2>&1 | sed -n 's/.*Collected : //p'); \
		runs=$$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/parse_loop 10000 $$what $$input 2>&1 | sed -n 's/.*Collected : //p'); \
		echo "$$input $$what: $$(( (runs - base) / 10000 )) instructions per parse"; \
	done; done
	for kib in 64 128 256; do \
		base=$$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/parse_loop 0 ours worst$$kib 2>&1 | sed -n 's/.*Collected : //p'); \
		runs=$$(valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/parse_loop 20 ours worst$$kib 2>&1 | sed -n 's/.*Collected : //p'); \
		echo "worst-case $$kib KiB head in 512-byte pieces: $$(( (runs - base) / 20 )) instructions (linear in size: issue 6)"; \
	done
	python tools/hello_instructions.py 2000
	@if [ -x $(BENCH_VENVS)/waitress-rs/bin/python ]; then \
		echo "hello@16 on the release wheel in $(BENCH_VENVS) (make bench-setup rebuilds it):"; \
		python3 tools/hello_load_profile.py $(BENCH_VENVS)/waitress-rs/bin/python 16 3000 --locks; \
	else echo "hello@16 with locked instructions: run make bench-setup first (release wheel)"; fi

# Debian packages the tests and benchmarks need, installed only when missing (root on CI).
SYSDEPS_TEST := nginx haproxy slowhttptest wrk strace
.PHONY: sysdeps
sysdeps: ## install the Debian packages the tests need (only those missing)
	tools/apt-ensure $(SYSDEPS_TEST)

# Server benchmarks (bench/bench.py, docs/benchmarks.md "Server benchmarks"). Each peer gets
# its own venv under bench/.venvs/ (never the project's .venv: waitress has our import name);
# our server is a release wheel installed into bench/.venvs/waitress-rs.
BENCH_VENVS := bench/.venvs
BENCH_ARGS ?=
BENCH_PY := $(BENCH_VENVS)/tools/bin/python
SYSDEPS_BENCH := wrk nginx taskset:util-linux /usr/include/ev.h:libev-dev
bench_pin_waitress := waitress==3.0.2
bench_pin_granian := granian==2.8.7
bench_pin_bjoern := bjoern==3.2.2
bench_pin_gunicorn := gunicorn==27.0.1

$(BENCH_VENVS)/tools/.deps:
	$(PYTHON) -m venv $(BENCH_VENVS)/tools
	$(BENCH_PY) -m pip install -q --disable-pip-version-check maturin==1.16.0 matplotlib==3.11.2
	touch $@

$(BENCH_VENVS)/%/.deps:
	$(PYTHON) -m venv $(BENCH_VENVS)/$*
	$(BENCH_VENVS)/$*/bin/python -m pip install -q --disable-pip-version-check $(bench_pin_$*)
	touch $@

.PHONY: bench-setup
bench-setup: $(BENCH_VENVS)/tools/.deps ## build our release wheel and the peers' venvs for make bench
	tools/apt-ensure $(SYSDEPS_BENCH)
	$(MAKE) $(foreach p,waitress granian bjoern gunicorn,$(BENCH_VENVS)/$(p)/.deps)
	test -x $(BENCH_VENVS)/waitress-rs/bin/python || $(PYTHON) -m venv $(BENCH_VENVS)/waitress-rs
	rm -rf $(BENCH_VENVS)/wheels
	$(BENCH_VENVS)/tools/bin/maturin build --release --quiet \
		--interpreter $(BENCH_VENVS)/waitress-rs/bin/python --out $(BENCH_VENVS)/wheels
	$(BENCH_VENVS)/waitress-rs/bin/python -m pip install -q --disable-pip-version-check \
		--force-reinstall --no-deps $(BENCH_VENVS)/wheels/*.whl
	$(CARGO) build --release --quiet -p waitress-server --example hello_server

.PHONY: bench
bench: bench-setup ## server benchmarks against waitress, granian, bjoern, gunicorn, nginx (~25 min; BENCH_ARGS=--quick)
	$(PYTHON) bench/bench.py $(BENCH_ARGS)
