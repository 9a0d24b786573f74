#!/usr/bin/env bash
# Build the previous release's `outpost` client once, into a cache directory, for the
# compatibility test (tests/tests/compat.rs): a device that has not updated yet must
# keep syncing with the new server (docs/protocol.md, "Compatibility").
#
#   scripts/prev-release.sh            build if missing; print the binary's path
#
# The release is the commit CHANGELOG.md names for it. Its sources come from this
# clone's history (`git archive`, no second worktree), and it builds with its own
# CARGO_TARGET_DIR: cargo hashes path crates by their place in the workspace, so the
# old `crates/protocol` would overwrite the new one's artifacts in a shared target
# directory. The cache lives under $OUTPOST_PREV_RELEASE_DIR, else
# $CARGO_TARGET_DIR/prev-release (CI keeps /var/cache/outpost/target between runs),
# else target/prev-release; a finished build is reused as long as its COMMIT file
# matches. Cold, it is a full debug build of the CLI and its dependencies: 289 s on
# two cores (527 s of CPU), once per machine; warm, a few milliseconds. What is kept
# is the binary alone (about 210 MB).
set -euo pipefail
cd "$(dirname "$0")/.."

release=0.1.0
commit=1da7a4158b8a07a672ff1b2db4a56af4cf7856ad

cache=${OUTPOST_PREV_RELEASE_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/prev-release}
dir="$cache/$release"
bin="$dir/bin/outpost"

if [ -x "$bin" ] && [ "$(cat "$dir/COMMIT" 2>/dev/null)" = "$commit" ]; then
    echo "$bin"
    exit 0
fi

if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    # A shallow clone (as some CI systems make) lacks the commit: fetch it once.
    echo "prev-release: fetching commit $commit (release $release) from origin" >&2
    git fetch --quiet --unshallow origin 2>/dev/null || git fetch --quiet origin "$commit" 2>/dev/null || true
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "prev-release: commit $commit (release $release) is not in this clone's history;" >&2
    echo "prev-release: a shallow clone cannot build the previous release (git fetch --unshallow)" >&2
    exit 1
fi

start=$(date +%s)
echo "prev-release: building outpost $release ($commit) into $dir (once; later runs reuse it)" >&2
rm -rf "$dir/src" "$dir/bin" "$dir/COMMIT"
mkdir -p "$dir/src" "$dir/bin"
git archive "$commit" | tar -x -C "$dir/src"
CARGO_TARGET_DIR="$dir/target" cargo build --locked --quiet \
    --manifest-path "$dir/src/Cargo.toml" -p outpost-cli --bin outpost >&2
cp "$dir/target/debug/outpost" "$bin"
# Only the binary is kept (a release is never rebuilt): its sources and the 1.6 GB of
# build outputs go.
rm -rf "$dir/src" "$dir/target"
echo "$commit" >"$dir/COMMIT"
echo "prev-release: built in $(($(date +%s) - start)) s" >&2
echo "$bin"
