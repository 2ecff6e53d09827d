#!/usr/bin/env bash
# The benchmark command: installs and starts Redis and moto (the DynamoDB-compatible server) on
# free local ports, builds every binary in release, creates the functions' table on moto, runs
# every scenario (`target/release/bench all`), prints the tables and writes BENCHMARKS.md.
# Everything it starts is stopped on exit; all traffic stays on 127.0.0.1.
#
#   scripts/bench.sh                        every scenario, 20 cold starts per binary
#   scripts/bench.sh coldstart --runs 50    one scenario, more starts
#   scripts/bench.sh all --quick            every size tenfold smaller (a smoke run)
#   BENCH_SKIP_BUILD=1 scripts/bench.sh     reuse the release binaries already built
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

# Only what the bench needs (Redis, moto), at the test command's pinned versions.
install_bench_dependencies() {
  step "Installing Redis (Debian) and moto (PyPI) at their pinned versions"
  install_debian_packages
  install_python_tools
}

install_bench_dependencies
start_services

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  step "cargo build --release --workspace --bins"
  cargo build --release --workspace --bins
fi

export CAFE_BENCH_DYNAMODB_ENDPOINT="$CAFE_TEST_DYNAMODB_ENDPOINT"
export CAFE_BENCH_REDIS_URL="$CAFE_TEST_REDIS_URL"
export CAFE_BENCH_TABLE_NAME="${CAFE_BENCH_TABLE_NAME:-cafe-bench-functions}"

if [ -x target/release/cafe-create-table ]; then
  step "Creating table $CAFE_BENCH_TABLE_NAME on moto with the seed items"
  TABLE_NAME="$CAFE_BENCH_TABLE_NAME" DYNAMODB_ENDPOINT="$CAFE_BENCH_DYNAMODB_ENDPOINT" \
    target/release/cafe-create-table
fi
# Otherwise the bench creates and seeds it itself before the cold starts.

step "target/release/bench ${*:-all}"
target/release/bench "${@:-all}"
