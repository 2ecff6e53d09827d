#!/usr/bin/env bash
# A cafe rush with Locust (load/locustfile.py) against cafe-local's release build, bounded in
# time, on local addresses only; keeps Locust's HTML report and CSV files.
#
#   scripts/load.sh                  the embedded default (memory store, in-process lock)
#   scripts/load.sh --backend aws    Redis + moto, installed and started as the tests do
#
#   USERS=50 SPAWN_RATE=10 DURATION=60s   simulated customers, how fast they arrive, how long
#   SEED_STOCK=1000000                    units of each seeded item (the rush must not sell out)
#   GATEWAY_MAX_LATENCY_MS=10             the mock gateway's latency (0..max ms per call)
#   WORKERS=2                             Locust distributed: one master and this many worker
#                                         processes (here, on 127.0.0.1; on other machines a
#                                         worker runs `locust -f load/locustfile.py --worker
#                                         --master-host <master>`). 0 (default): one process.
#
# The report lands in load/reports/<backend>-<UTC time>/: report.html, stats_stats.csv,
# stats_stats_history.csv, stats_failures.csv, stats_exceptions.csv, server.log. Locust is
# installed into .tools/load-venv exactly as pinned (with hashes) in scripts/load-requirements.txt.
# Exits with Locust's status: non-zero when any request failed its contract check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BACKEND=memory
while [ $# -gt 0 ]; do
  case "$1" in
    --backend) BACKEND="${2:-}"; shift 2 ;;
    --backend=*) BACKEND="${1#--backend=}"; shift ;;
    *) echo "usage: scripts/load.sh [--backend memory|aws]" >&2; exit 2 ;;
  esac
done
case "$BACKEND" in memory|aws) ;; *) echo "unknown backend $BACKEND (memory or aws)" >&2; exit 2 ;; esac
USERS="${USERS:-50}"
WORKERS="${WORKERS:-0}"
case "$WORKERS" in *[!0-9]*|"") echo "WORKERS must be a number" >&2; exit 2 ;; esac
SPAWN_RATE="${SPAWN_RATE:-10}"
DURATION="${DURATION:-60s}"
export SEED_STOCK="${SEED_STOCK:-1000000}"

# services.sh gives step, free_port, wait_for_port and, for the AWS backend, the pinned installs
# and Redis + moto (stopped on exit).
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"

LOAD_VENV="$ROOT/.tools/load-venv"
step "Locust, as pinned in scripts/load-requirements.txt"
if ! "$LOAD_VENV/bin/locust" --version 2>/dev/null | grep -q "2.46.7"; then
  python3 -m venv "$LOAD_VENV"
  "$LOAD_VENV/bin/pip" install -q --disable-pip-version-check --require-hashes --no-deps \
    -r scripts/load-requirements.txt
fi
"$LOAD_VENV/bin/locust" --version

step "cafe-local, release build"
cargo build --release -q -p cafe-local --bin cafe-local --bin cafe-create-table

SERVER_ENV=()
if [ "$BACKEND" = aws ]; then
  install_dependencies
  start_services
  TABLE="cafe-load-$(date +%s)"
  export DYNAMODB_ENDPOINT="$CAFE_TEST_DYNAMODB_ENDPOINT" TABLE_NAME="$TABLE"
  target/release/cafe-create-table
  SERVER_ENV=(CAFE_BACKEND=aws "REDIS_URL=$CAFE_TEST_REDIS_URL")
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/load/reports/$BACKEND-$STAMP"
mkdir -p "$OUT"
PORT="$(free_port)"
HOST="http://127.0.0.1:$PORT"
# Only local addresses: the run never leaves this machine.
case "$HOST" in http://127.0.0.1:*) ;; *) echo "refusing a non-local host $HOST" >&2; exit 2 ;; esac

SERVER_PID=""
WORKER_PIDS=()
stop_server() {
  for pid in "${WORKER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$SERVER_PID" ]; then
    kill -INT "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap 'stop_server; stop_services' EXIT

step "cafe-local ($BACKEND) on $HOST"
env "${SERVER_ENV[@]}" RUST_LOG="${RUST_LOG:-warn}" \
  GATEWAY_MAX_LATENCY_MS="${GATEWAY_MAX_LATENCY_MS:-10}" \
  target/release/cafe-local --port "$PORT" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for_port "$PORT" cafe-local

DISTRIBUTED=()
if [ "$WORKERS" -gt 0 ]; then
  # The master hands users out and gathers the stats; each worker runs its share of them.
  MASTER_PORT="$(free_port)"
  step "Locust distributed: a master on 127.0.0.1:$MASTER_PORT and $WORKERS worker(s)"
  for n in $(seq 1 "$WORKERS"); do
    "$LOAD_VENV/bin/locust" -f load/locustfile.py --worker --master-host 127.0.0.1 \
      --master-port "$MASTER_PORT" --loglevel WARNING >"$OUT/worker-$n.log" 2>&1 &
    WORKER_PIDS+=("$!")
  done
  DISTRIBUTED=(--master --master-bind-host 127.0.0.1 --master-bind-port "$MASTER_PORT"
    --expect-workers "$WORKERS" --expect-workers-max-wait 60)
fi

step "Locust: $USERS customers arriving $SPAWN_RATE/s for $DURATION"
status=0
# `timeout` bounds the whole run even if Locust hangs: the duration plus a minute to stop (and,
# distributed, a minute for the workers to connect).
seconds="${DURATION%s}"
case "$seconds" in *[!0-9]*) seconds=600 ;; esac
timeout "$((seconds + 120))" "$LOAD_VENV/bin/locust" -f load/locustfile.py --headless \
  "${DISTRIBUTED[@]}" \
  --host "$HOST" -u "$USERS" -r "$SPAWN_RATE" -t "$DURATION" --stop-timeout 10 \
  --csv "$OUT/stats" --csv-full-history --html "$OUT/report.html" --only-summary \
  --loglevel WARNING || status=$?

step "Report: $OUT"
ls -1 "$OUT"
python3 - "$OUT/stats_stats.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'request':<36} {'count':>7} {'fail':>5} {'med ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7}")
for r in rows:
    print(f"{r['Name'][:36]:<36} {r['Request Count']:>7} {r['Failure Count']:>5} "
          f"{r['50%']:>7} {r['95%']:>7} {r['99%']:>7} {float(r['Requests/s']):>7.1f}")
PY
exit "$status"
