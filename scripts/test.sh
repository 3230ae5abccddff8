#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, then runs
# every test. Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
# The RTSP camera the pull tests read from: GStreamer's gst-rtsp-server via python3-gi.
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1 \
   || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 vp8enc >/dev/null 2>&1; then
  need_apt+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
             gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-tools)
fi
# A real Prometheus text parser for the /metrics test.
/usr/bin/python3 -c "import prometheus_client" >/dev/null 2>&1 || need_apt+=(python3-prometheus-client)
# Headless Chromium for the browser end-to-end tests (driven by playwright-core).
[ -x /usr/lib/chromium/chromium ] || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# playwright-core only (no browser download: the driver uses Debian's Chromium).
if [ ! -d scripts/node_modules/playwright-core ]; then
  npm --prefix scripts ci --no-audit --no-fund --loglevel=error
fi

cargo fmt --all -- --check
cargo test "$@"
# The criterion micro-benches run once each (test mode), and the load harness runs a smoke
# load against the server binary the tests just built: 5 viewers, 5 s, no packet lost.
cargo test --bench repacketize --bench srtp --bench hub
cargo test --bench fanout -- --viewers 5 --seconds 5 --server-bin target/debug/hubcast
