#!/usr/bin/env bash
# Runs the fuzz targets one after another (never two at once: the machines have 2 cores),
# each for SECONDS_PER_TARGET (default 600), starting from the committed seeds plus whatever
# fuzz/corpus/<target> already holds. Logs go to fuzz/logs/<target>.log (gitignored via
# fuzz/.gitignore). Needs cargo-fuzz (`cargo install cargo-fuzz`). Usage: fuzz/tools/run_all.sh [target...]
set -u
cd "$(dirname "$0")/.."
secs=${SECONDS_PER_TARGET:-600}
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(rtsp_message sdp_offer h264 rtp_ingest transport_in config)
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t for ${secs}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -jobs=1 -workers=1 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    # With -jobs libFuzzer runs the fuzzer in a child writing ./fuzz-0.log; the parent has
    # already copied it into logs/<target>.log.
    rm -f fuzz-0.log
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "logs/$t.log"
    echo "corpus: $(find "corpus/$t" -type f | wc -l) files, $(du -sb "corpus/$t" | cut -f1) bytes; exit $rc"
    ls "artifacts/$t" 2>/dev/null | sed 's/^/artifact: /'
done
