# Outpost: one entry point for people and CI.
#   make run    build what is needed and start the demo
#   make test   the whole suite (installs missing system packages first)
#   make bench  the benchmarks, figures printed to the terminal
#   make lint   rustfmt and clippy, as CI runs them

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: deps build run test test-desktop bench lint fmt

deps:
	@scripts/deps.sh

build: deps
	$(CARGO) build --release -p outpost-cli -p outpost-server

run: build
	@scripts/demo.sh

test: deps
	@scripts/test.sh

bench: deps
	$(CARGO) bench -p outpost-store --bench write_path
	$(CARGO) build --release --bins
	$(CARGO) bench -p outpost-tests --bench sync
	scripts/with-postgres.sh $(CARGO) bench -p outpost-server

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude outpost-desktop --all-targets -- -D warnings

# The desktop app: WebKit build, Vitest and the real-window test under Xvfb. Not yet
# part of `make test` (see src-tauri/README.md for why and what it needs).
test-desktop:
	@scripts/test-desktop.sh

fmt:
	$(CARGO) fmt --all
