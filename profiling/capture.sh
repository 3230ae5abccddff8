#!/usr/bin/env bash
# Captures a CPU profile, a flamegraph and a heap profile from a running hubcast.
#
#   profiling/capture.sh [BASE_URL] [SECONDS]
#     BASE_URL  the pprof address (config key pprofAddress), default http://127.0.0.1:9999
#     SECONDS   CPU capture length, 1..300, default 30
#
# Writes profiling/captures/YYYYmmdd-HHMMSS/{cpu.pb,flamegraph.svg,heap.pb.gz}. The CPU
# profile and the flamegraph are two captures one after the other, because hubcast runs only
# one CPU capture at a time (a concurrent one gets 409). Put the server under load first.
set -euo pipefail

base_url="${1:-http://127.0.0.1:9999}"
base_url="${base_url%/}"
seconds="${2:-30}"

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 300)); then
    echo "SECONDS must be an integer from 1 to 300, got: $seconds" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/captures/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# The request itself lasts SECONDS; allow time on top for symbolization.
max_time=$((seconds + 120))

fetch() {
    local url="$1" file="$2"
    echo "GET $url -> $file" >&2
    curl --fail --silent --show-error --max-time "$max_time" -o "$file" "$url"
}

# Activating heap profiling first is harmless when it is already active; a 501 means the
# binary was built without heap profiling, which should not stop the CPU captures.
heap_ok=1
if ! curl --fail --silent --show-error --max-time 30 -o /dev/null \
    "$base_url/debug/pprof/heap?activate=1"; then
    echo "warning: heap profiling unavailable; skipping heap.pb.gz" >&2
    heap_ok=0
fi

fetch "$base_url/debug/pprof/profile?seconds=$seconds" "$out/cpu.pb"
fetch "$base_url/debug/pprof/flamegraph?seconds=$seconds" "$out/flamegraph.svg"
if ((heap_ok)); then
    fetch "$base_url/debug/pprof/heap" "$out/heap.pb.gz"
fi

echo "captured into $out:" >&2
ls -l "$out" >&2

if command -v go >/dev/null 2>&1; then
    echo "== CPU (go tool pprof -top) ==" >&2
    go tool pprof -top "$out/cpu.pb" | head -n 40 || true
    if ((heap_ok)); then
        echo "== heap in use (go tool pprof -sample_index=inuse_space -top) ==" >&2
        go tool pprof -sample_index=inuse_space -top "$out/heap.pb.gz" | head -n 30 || true
    fi
else
    echo "go not found: open the profiles with 'go tool pprof -http=:8080 $out/cpu.pb' elsewhere, or 'pprof -top $out/cpu.pb'" >&2
fi
echo "$out"
