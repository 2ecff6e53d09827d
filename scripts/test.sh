#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs what the tests need (Redis server,
# moto's DynamoDB-compatible server, cfn-lint, SAM CLI, cargo-lambda), starts Redis and moto on
# free local ports, runs formatting, lints and every test, and stops what it started.
#
#   scripts/test.sh            everything
#   SKIP_LAMBDA_BUILD=1 ...    skip the cross-compiled `cargo lambda build --release --arm64`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS="${CAFE_TOOLS_DIR:-$ROOT/.tools}"
VENV="$TOOLS/venv"
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cafe-test.XXXXXX")"
step() { printf '\n== %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "Installing test dependencies"
if ! command -v redis-server >/dev/null 2>&1; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY_TOOLS=('moto[server]' cfn-lint aws-sam-cli cargo-lambda)
if ! "$VENV/bin/python" -c 'import moto, cfnlint, samcli' >/dev/null 2>&1 || [ ! -x "$VENV/bin/cargo-lambda" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_TOOLS[@]}"
fi
export PATH="$VENV/bin:$PATH"

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$name did not start on port $port" >&2
  return 1
}

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$RUN_DIR/redis.pid" ]; then kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT

step "Starting Redis and moto (DynamoDB-compatible) on free ports"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log"
wait_for_port "$REDIS_PORT" redis
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$RUN_DIR/moto.log" 2>&1 &
PIDS+=($!)
wait_for_port "$MOTO_PORT" moto

export CAFE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export CAFE_TEST_REDIS_PORT="$REDIS_PORT"
export CAFE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
echo "redis: $CAFE_TEST_REDIS_URL   dynamodb: $CAFE_TEST_DYNAMODB_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (in-memory, Redis and DynamoDB suites)"
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"

step "Template checks: cfn-lint and sam validate --lint"
cfn-lint template.yaml
sam validate --lint --template-file template.yaml --region us-east-1

if [ -z "${SKIP_LAMBDA_BUILD:-}" ]; then
  step "cargo lambda build --release --arm64 (every function)"
  cargo lambda build --release --arm64 --workspace
  scripts/binary-sizes.sh
fi

step "All checks passed"
