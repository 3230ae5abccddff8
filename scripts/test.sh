#!/usr/bin/env bash
# The one test command: installs what the tests need on a fresh Debian machine, then runs
# every test. Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo fmt --all -- --check
cargo test "$@"
# The criterion micro-benches run once each (test mode), and the load harness runs a smoke
# load against the server binary the tests just built: 5 viewers, 5 s, no packet lost.
cargo test --bench repacketize --bench srtp --bench hub
cargo test --bench fanout -- --viewers 5 --seconds 5 --server-bin target/debug/hubcast
