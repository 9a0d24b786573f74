#!/usr/bin/env bash
# The UI's npm packages (npm ci, from the lockfile) and its production build in
# ui/dist, which the desktop crate embeds at compile time (clippy included): without
# it `tauri::generate_context!` stops the build. `--check` also runs svelte-check.
set -euo pipefail
cd "$(dirname "$0")/../ui"
npm ci --no-audit --no-fund --loglevel=error
if [ "${1:-}" = "--check" ]; then npm run --silent check; fi
npm run --silent build
