#!/usr/bin/env bash
# Install the system packages Outpost builds and tests with, where missing.
# Debian/Ubuntu only; needs root (or sudo) the first time.
set -euo pipefail

# Build: a C compiler for SQLCipher, OpenSSL for its crypto, D-Bus for the keyring.
build_pkgs=(build-essential pkg-config libssl-dev libdbus-1-dev)
# Tests: a private D-Bus session with an unlocked GNOME keyring (the real Secret
# Service), secret-tool to look inside it, PostgreSQL for the server's second
# backend, iproute2 (`ip`) to make a real OS network change for the engine's
# network-event test, and sqlite3 to check a server database after its disk filled
# (tests/tests/disk.rs) and to read its idempotency records in the convergence
# property (tests/tests/convergence.rs), and fuse3 (`fusermount3`, /etc/fuse.conf) for
# the power-cut tests' FUSE shim (tests/tests/powercut.rs; as root it mounts with
# mount(2) and unmounts with umount(2), the helper is what a non-root run needs).
test_pkgs=(dbus dbus-x11 gnome-keyring libsecret-tools postgresql iproute2 sqlite3 fuse3)

missing=()
for p in "${build_pkgs[@]}" "${test_pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed. Install the Rust toolchain (https://rustup.rs) and run this again." >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing system packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "error: these packages are missing and installing them needs root:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
