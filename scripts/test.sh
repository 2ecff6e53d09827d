#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Redis server,
# moto's DynamoDB-compatible server, cfn-lint, SAM CLI, cargo-lambda, schemathesis), starts Redis
# and moto on free local ports, runs formatting, lints, every test (in-memory, Redis and DynamoDB
# suites), the template checks, schemathesis against the local server and the release build of
# every function, and stops what it started.
#
#   scripts/test.sh                      everything
#   SKIP_LAMBDA_BUILD=1 scripts/test.sh  without the cross-compiled release build
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

install_dependencies
start_services

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test: unit, handler, HTTP, Redis and DynamoDB suites"
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"

step "schemathesis: fuzz the local server from docs/openapi.yaml"
scripts/schemathesis.sh

step "Template checks: cfn-lint and sam validate --lint"
cfn-lint template.yaml
sam validate --lint --template-file template.yaml --region us-east-1

if [ -z "${SKIP_LAMBDA_BUILD:-}" ]; then
  step "cargo lambda build --release --arm64 (every function)"
  # The function crates only: the local server and the benchmarks are not deployed.
  cargo lambda build --release --arm64 --workspace --exclude cafe-local --exclude cafe-bench
  scripts/binary-sizes.sh
fi

step "All checks passed"
