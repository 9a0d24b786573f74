#!/usr/bin/env bash
# Supply chain (issue 19 item 12), part of `make lint`:
# - cargo-deny's licences, bans and sources checks over the whole dependency graph;
#   deny.toml says what is allowed, and why each exception is there;
# - `npm audit --omit=dev` over the UI's runtime dependencies, with the exceptions in
#   ui/audit-allow.json (advisory id -> why it does not apply).
# Advisories for the Rust crates (`cargo deny check advisories`) need a copy of the
# RustSec advisory database, which cannot be fetched on this project's machines: run
# them where it can be (OUTPOST_DENY_ADVISORIES=1). npm's advisory endpoint does not
# answer here either; when it does not, the audit says SKIPPED with the reason (never a
# silent pass).
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo-deny >/dev/null 2>&1; then
  step "installing cargo-deny 0.20.2 (once, from crates.io; pinned so a new release cannot break lint)"
  cargo install --locked cargo-deny --version 0.20.2
fi

step "cargo deny: licences, bans, sources"
cargo deny --all-features check licenses bans sources
if [ -n "${OUTPOST_DENY_ADVISORIES:-}" ]; then
  step "cargo deny: advisories"
  cargo deny check advisories
else
  echo "SKIPPED: cargo deny check advisories (needs the RustSec advisory database; run with OUTPOST_DENY_ADVISORIES=1 where it can be fetched)"
fi

step "npm audit --omit=dev (ui)"
if ! command -v npm >/dev/null 2>&1; then
  echo "SKIPPED: npm audit: npm is not installed"
  exit 0
fi
report=$(cd ui && npm audit --omit=dev --json 2>/dev/null) || true
node - "$report" ui/audit-allow.json <<'JS'
const [report, allowPath] = process.argv.slice(2);
const allow = JSON.parse(require("fs").readFileSync(allowPath, "utf8"));
let r;
try { r = JSON.parse(report); } catch { r = null; }
if (!r || r.error || !r.vulnerabilities) {
  const why = (r && (r.message || (r.error && (r.error.summary || r.error.code)))) || "no answer";
  console.log(`SKIPPED: npm audit: the registry's advisory endpoint did not answer (${why})`);
  process.exit(0);
}
const found = [];
for (const [name, v] of Object.entries(r.vulnerabilities)) {
  for (const via of v.via) {
    if (typeof via !== "object") continue;
    const id = (via.url || "").split("/").pop() || String(via.source);
    if (!(id in allow)) found.push(`${name}: ${id} ${via.title} (${via.severity})`);
  }
}
for (const id of Object.keys(allow)) console.log(`allowed: ${id}: ${allow[id]}`);
if (found.length) {
  console.error("npm audit found advisories not in ui/audit-allow.json:\n  " + found.join("\n  "));
  process.exit(1);
}
console.log("npm audit: no advisories outside the allow-list");
JS
