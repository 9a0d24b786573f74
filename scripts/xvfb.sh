# Sourced by the scripts that open the real window (test-desktop.sh, bench-desktop.sh,
# bench-idle.sh): without a DISPLAY, start Xvfb on the first free display from :99 and
# stop it when the script exits. Sets DISPLAY and XVFB_PID.
XVFB_PID=
if [ -z "${DISPLAY:-}" ]; then
  for n in $(seq 99 120); do [ -e "/tmp/.X11-unix/X$n" ] || { DISPLAY_NUM=$n; break; }; done
  Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB_PID=$!
  export DISPLAY=":$DISPLAY_NUM"
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.1; done
fi
trap '[ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true' EXIT
