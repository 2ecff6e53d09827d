#!/usr/bin/env bash
# Every function's RELEASE binary, run under cargo-lambda's Runtime API emulator
# (`cargo lambda watch --only-lambda-apis`), must answer what its in-process handler answers.
#
# Which binaries: after `sam build` (scripts/test.sh runs it first), the arm64 `bootstrap` files
# SAM packaged in .aws-sam/build — the very artefacts that deploy — run under qemu's user-mode
# emulator (`qemu-aarch64-static`, Debian's qemu-user-static, with the arm64 loader and libc of
# libc6-arm64-cross); without them (EMULATOR_BINARIES=host, or standalone with no .aws-sam) the
# x86_64 release build of every function crate.
#
# Generates one event per function with `sam local
# generate-event`, creates an EventBridge bus on moto, starts the emulator on a free port and every
# binary as a child process against it (AWS backend over the moto + Redis of services.sh, a fresh
# table per run), then runs local/tests/lambda_emulator.rs, which creates the table, builds an
# in-process App over the same table and Redis, makes twin fixtures and compares the answers.
# Stops everything it started; exits non-zero naming the functions whose answers differ.
#
#   scripts/emulator.sh        standalone: installs and starts Redis and moto itself
#   (from scripts/test.sh, after install_dependencies and start_services: reuses them)
#
#   KEEP_RUN_DIR=1             keep the run directory (events, logs) even when everything passes
set -euo pipefail
SCRIPT_START=$(date +%s.%N)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# services.sh gives step, free_port, wait_for_port, stop_services (which stops only what this
# process started) and, when run standalone, install_dependencies and start_services.
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
if [ -z "${CAFE_TEST_DYNAMODB_ENDPOINT:-}" ] || [ -z "${CAFE_TEST_REDIS_URL:-}" ]; then
  install_dependencies
  start_services
else
  export PATH="$VENV/bin:$PATH"
fi
export SAM_CLI_TELEMETRY=0
PYTHON="$VENV/bin/python"

EMU_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cafe-emulator.XXXXXX")"
mkdir -p "$EMU_DIR/events" "$EMU_DIR/logs"
# The fixed development keyset, shared by the binaries and the in-process App: the signing
# functions read the private set, the others its public JWKS (each only what its TOKEN_KEY says).
TOKEN_SIGNING_KEYS_VALUE="$(cargo run -q -p cafe-local --bin cafe-keys -- development signing)"
TOKEN_VERIFYING_KEYS_VALUE="$(cargo run -q -p cafe-local --bin cafe-keys -- development verifying)"
RUN_ID="$(date +%s)-$$"
TABLE="cafe-emu-$RUN_ID"
BUS="cafe-emu-bus-$RUN_ID"
FUNCTIONS=()
for dir in "$ROOT"/functions/*/; do FUNCTIONS+=("$(basename "$dir")"); done

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
CHILD_PIDS=()
CHILD_NAMES=()
STATUS=1
BUILD_SECONDS="-"
print_logs() {
  for log in "$EMU_DIR"/logs/*.log; do
    [ -f "$log" ] || continue
    printf '\n---- %s (last 40 lines)\n' "$(basename "$log")" >&2
    tail -40 "$log" >&2
  done
}
cleanup() {
  local i
  for i in "${!CHILD_PIDS[@]}"; do
    # `cargo lambda watch` is cargo running cargo-lambda: stop the child, then cargo.
    pkill -TERM -P "${CHILD_PIDS[$i]}" 2>/dev/null || true
    kill "${CHILD_PIDS[$i]}" 2>/dev/null || true
  done
  for i in "${!CHILD_PIDS[@]}"; do wait "${CHILD_PIDS[$i]}" 2>/dev/null || true; done
  echo "release build: ${BUILD_SECONDS} s; whole script: $(elapsed "$SCRIPT_START") s"
  if [ "$STATUS" -ne 0 ]; then
    print_logs
    echo "run directory kept: $EMU_DIR" >&2
  elif [ -n "${KEEP_RUN_DIR:-}" ]; then
    echo "run directory kept: $EMU_DIR"
  else
    rm -rf "$EMU_DIR"
  fi
  stop_services
}
trap cleanup EXIT

# The command that runs function $1's release binary, one word per line.
BINARIES="${EMULATOR_BINARIES:-}"
if [ -z "$BINARIES" ]; then
  if compgen -G ".aws-sam/build/*Function/bootstrap" >/dev/null; then BINARIES=sam; else BINARIES=host; fi
fi
if [ "$BINARIES" = sam ]; then
  step "The arm64 bootstraps sam build packaged (.aws-sam/build), under qemu-aarch64-static"
  command -v qemu-aarch64-static >/dev/null || { echo "qemu-aarch64-static is not installed (scripts/debian-packages.txt)" >&2; exit 1; }
  [ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || { echo "the arm64 loader is missing (libc6-arm64-cross)" >&2; exit 1; }
  # Function crate → the logical id whose BuildProperties.Binary it is, from template.yaml.
  declare -A ARTEFACT=()
  while read -r fn logical; do ARTEFACT[$fn]=".aws-sam/build/$logical/bootstrap"; done < <(
    "$PYTHON" - <<'PY'
import yaml
class Tagged(yaml.SafeLoader):
    pass
Tagged.add_multi_constructor("!", lambda loader, suffix, node: None)
template = yaml.load(open("template.yaml"), Loader=Tagged)
for logical, resource in template["Resources"].items():
    if resource.get("Type") == "AWS::Serverless::Function":
        print(resource["Metadata"]["BuildProperties"]["Binary"], logical)
PY
  )
  for fn in "${FUNCTIONS[@]}"; do
    bootstrap="${ARTEFACT[$fn]:-}"
    [ -n "$bootstrap" ] && [ -x "$bootstrap" ] || { echo "no packaged bootstrap for $fn (run sam build)" >&2; exit 1; }
    [ "$(od -An -t x1 -j 18 -N 2 "$bootstrap" | tr -d ' ')" = b700 ] || { echo "$bootstrap is not aarch64" >&2; exit 1; }
  done
  run_binary() { printf '%s\n' qemu-aarch64-static -L /usr/aarch64-linux-gnu "${ARTEFACT[$1]}"; }
else
  step "cargo build --release (x86_64) of the ${#FUNCTIONS[@]} function crates"
  packages=()
  for fn in "${FUNCTIONS[@]}"; do packages+=(-p "$fn"); done
  BUILD_START=$(date +%s.%N)
  cargo build --release "${packages[@]}"
  BUILD_SECONDS=$(elapsed "$BUILD_START")
  echo "release build: ${BUILD_SECONDS} s"
  for fn in "${FUNCTIONS[@]}"; do
    [ -x "target/release/$fn" ] || { echo "no release binary target/release/$fn" >&2; exit 1; }
  done
  run_binary() { printf '%s\n' "target/release/$1"; }
fi

step "cargo test --no-run: the comparison test, built right after the binaries (same sources)"
TEST_BUILD_START=$(date +%s.%N)
cargo test -p cafe-local --test lambda_emulator --no-run
echo "test build: $(elapsed "$TEST_BUILD_START") s"

step "sam local generate-event: one event per function into $EMU_DIR/events"
# The route table (method, path, function) from shared/src/routes.rs, the one source of truth.
# (rustfmt splits a long entry over several lines: read the file whole.)
routes=$(perl -0777 -ne 'while (/\broute\(\s*"([A-Z]+)",\s*"([^"]*)",\s*"([a-z-]+)",?\s*\)/g) { print "$1 $2 $3\n" }' shared/src/routes.rs)
route_count=$(printf '%s\n' "$routes" | grep -c .)
if [ "$route_count" -ne 26 ]; then
  echo "expected 26 routes in shared/src/routes.rs, read $route_count" >&2
  exit 1
fi
while read -r method path fn; do
  # The body of the function's sample (the test fills in the fixture's ids); none for GET/DELETE.
  body=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("body") or "")' \
    "events/$fn.json")
  # `--path` is given without its leading slash: sam adds one (`/member` would become `//member`).
  sam local generate-event apigateway http-api-proxy --method "$method" \
    --path "${path#/}" --body "$body" >"$EMU_DIR/events/$fn.json"
done <<<"$routes"
# The functions that are not routes: the stream publisher gets a DynamoDB stream event, the
# others (expire-withdrawals, payment-reconcile, expire-orders) are scheduled and get a scheduled
# event, and so does live-sender (an EventBridge rule's: the test gives it the cafe's source,
# type and detail).
for fn in "${FUNCTIONS[@]}"; do
  [ -f "$EMU_DIR/events/$fn.json" ] && continue
  case "$fn" in
    events-publisher) sam local generate-event dynamodb update ;;
    # `sam local generate-event` has no WebSocket API event: the samples of events/.
    live-connect | live-disconnect | live-subscribe) cat "events/$fn.json" ;;
    *) sam local generate-event cloudwatch scheduled-event ;;
  esac >"$EMU_DIR/events/$fn.json"
done
ls "$EMU_DIR/events"

step "EventBridge bus $BUS on moto"
"$PYTHON" - "$CAFE_TEST_DYNAMODB_ENDPOINT" "$BUS" <<'PY'
import sys
import boto3
endpoint, bus = sys.argv[1], sys.argv[2]
events = boto3.client("events", endpoint_url=endpoint, region_name="us-east-1")
print(events.create_event_bus(Name=bus)["EventBusArn"])
PY

step "A stub of the live WebSocket API's management endpoint (every post: 410 Gone)"
LIVE_PORT=$(free_port)
"$PYTHON" - "$LIVE_PORT" >"$EMU_DIR/logs/live-management-stub.log" 2>&1 <<'PY' &
import http.server, sys
class Gone(http.server.BaseHTTPRequestHandler):
    def answer(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"message":"Gone"}'
        self.send_response(410)
        self.send_header("x-amzn-errortype", "GoneException")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_POST = do_DELETE = do_GET = answer
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Gone).serve_forever()
PY
CHILD_PIDS+=($!)
CHILD_NAMES+=(live-management-stub)
wait_for_port "$LIVE_PORT" live-management-stub
LIVE_ENDPOINT="http://127.0.0.1:$LIVE_PORT/live"

step "cargo lambda watch --only-lambda-apis and the ${#FUNCTIONS[@]} release binaries"
EMU_PORT=$(free_port)
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$EMU_PORT" \
  >"$EMU_DIR/logs/emulator.log" 2>&1 &
CHILD_PIDS+=($!)
CHILD_NAMES+=(emulator)
wait_for_port "$EMU_PORT" emulator
# The floor's limits as the in-process side has them (cafe::testing::test_config: none), so both
# sides answer the scenario's many payments per member alike.
for fn in "${FUNCTIONS[@]}"; do
  env AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$EMU_PORT/.rt/$fn" \
    AWS_LAMBDA_FUNCTION_NAME="$fn" AWS_LAMBDA_FUNCTION_VERSION=1 \
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
    CAFE_BACKEND=aws CAFE_ENV=development \
    DYNAMODB_ENDPOINT="$CAFE_TEST_DYNAMODB_ENDPOINT" REDIS_URL="$CAFE_TEST_REDIS_URL" \
    TABLE_NAME="$TABLE" \
    TOKEN_SIGNING_KEYS="$TOKEN_SIGNING_KEYS_VALUE" TOKEN_VERIFYING_KEYS="$TOKEN_VERIFYING_KEYS_VALUE" \
    ARGON2_MEMORY_KIB=8 ARGON2_ITERATIONS=1 ARGON2_PARALLELISM=1 \
    REFRESH_REUSE_GRACE_SECONDS=2 \
    SHOP_MAX_IN_PROGRESS=1000000000 SHOP_MAX_OPEN_PER_MEMBER=1000000000 \
    EVENTBRIDGE_ENDPOINT="$CAFE_TEST_DYNAMODB_ENDPOINT" EVENT_BUS_NAME="$BUS" \
    LIVE_MANAGEMENT_ENDPOINT="$LIVE_ENDPOINT" \
    RUST_LOG=info \
    $(run_binary "$fn") >"$EMU_DIR/logs/$fn.log" 2>&1 &
  CHILD_PIDS+=($!)
  CHILD_NAMES+=("$fn")
done
# A binary that fails at init exits at once; one that is still alive is polling for its next
# event (under qemu, init takes longer).
sleep 3
for i in "${!CHILD_PIDS[@]}"; do
  if ! kill -0 "${CHILD_PIDS[$i]}" 2>/dev/null; then
    echo "${CHILD_NAMES[$i]} exited during start-up" >&2
    exit 1
  fi
done
echo "emulator http://127.0.0.1:$EMU_PORT, table $TABLE, ${#FUNCTIONS[@]} binaries running"

step "cargo test -p cafe-local --test lambda_emulator -- --ignored --nocapture"
set +e
CAFE_EMULATOR_URL="http://127.0.0.1:$EMU_PORT" CAFE_EMULATOR_RUN_DIR="$EMU_DIR" \
  CAFE_EMULATOR_TABLE="$TABLE" CAFE_EMULATOR_BUS="$BUS" CAFE_EMULATOR_LIVE_ENDPOINT="$LIVE_ENDPOINT" \
  cargo test -p cafe-local --test lambda_emulator -- --ignored --nocapture
test_status=$?
set -e

dead=()
for i in "${!CHILD_PIDS[@]}"; do
  kill -0 "${CHILD_PIDS[$i]}" 2>/dev/null || dead+=("${CHILD_NAMES[$i]}")
done
if [ "${#dead[@]}" -gt 0 ]; then
  echo "exited during the comparison: ${dead[*]}" >&2
  test_status=1
fi
if [ "$test_status" -ne 0 ]; then
  if [ -s "$EMU_DIR/failures.txt" ]; then
    echo "emulator and in-process answers differ for: $(sort -u "$EMU_DIR/failures.txt" | tr '\n' ' ')" >&2
  else
    echo "the emulator comparison failed before comparing (see above)" >&2
  fi
  exit 1
fi

STATUS=0
step "Every function answers the same under the emulator as in-process"
