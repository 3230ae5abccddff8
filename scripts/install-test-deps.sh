#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine. Idempotent: each step is
# skipped when what it installs is already there. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The RTSP camera the pull tests read from: GStreamer's gst-rtsp-server via python3-gi.
if ! /usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" >/dev/null 2>&1 \
   || ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 vp8enc >/dev/null 2>&1; then
  need_apt+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
             gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-tools)
fi
# GStreamer's webrtcbin (a WHEP viewer no one here wrote): plugins-bad plus libnice; the
# camera's H.265 and AAC encoders (x265enc, voaacenc) are in plugins-bad too.
if ! gst-inspect-1.0 webrtcbin >/dev/null 2>&1 || ! gst-inspect-1.0 nicesrc >/dev/null 2>&1 \
   || ! gst-inspect-1.0 x265enc >/dev/null 2>&1 || ! gst-inspect-1.0 voaacenc >/dev/null 2>&1 \
   || ! /usr/bin/python3 -c "import gi; gi.require_version('GstWebRTC', '1.0')" >/dev/null 2>&1; then
  need_apt+=(gstreamer1.0-plugins-bad gstreamer1.0-nice gir1.2-gst-plugins-bad-1.0 gstreamer1.0-libav)
fi
# A real Prometheus text parser for the /metrics test.
/usr/bin/python3 -c "import prometheus_client" >/dev/null 2>&1 || need_apt+=(python3-prometheus-client)
# Headless Chromium for the browser end-to-end tests (driven by playwright-core).
[ -x /usr/lib/chromium/chromium ] || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
/usr/bin/python3 -m venv --help >/dev/null 2>&1 && /usr/bin/python3 -c "import ensurepip" >/dev/null 2>&1 \
  || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# playwright-core (no browser download: the driver uses Debian's Chromium) and
# node-datachannel (libdatachannel, OBS's WebRTC stack), pinned by the lock file.
if [ ! -d scripts/node_modules/playwright-core ] || [ ! -d scripts/node_modules/node-datachannel ]; then
  npm --prefix scripts ci --no-audit --no-fund --loglevel=error
fi

# aiortc (WHEP viewer and WHIP publisher) and ffmpeg 9 with the WHIP muxer (the
# imageio-ffmpeg wheel ships the binary), in a virtualenv the repo ignores.
venv=scripts/.venv
if ! "$venv/bin/python" -c "import aiortc, imageio_ffmpeg" >/dev/null 2>&1; then
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/requirements.txt
fi
