#!/usr/bin/env bash
# System packages the desktop app needs to build (WebKitGTK and friends) and its
# real-window tests need (Xvfb, WebKitWebDriver, imagemagick, xdotool); installed
# through apt when missing (root or sudo), with a clear message otherwise.
set -euo pipefail
step() { printf '\n== %s\n' "$*"; }

pkgs=(build-essential pkg-config file libssl-dev libdbus-1-dev
      libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
      xvfb xauth webkit2gtk-driver imagemagick xdotool curl jq rpm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=(sudo); else
      echo "error: missing packages need root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v node >/dev/null || { echo "error: Node.js (20.19 or later) is needed for the UI" >&2; exit 1; }

