# Sourced by scripts/test.sh and scripts/bench.sh: installs the test dependencies and starts
# Redis and moto (the DynamoDB-compatible server) on free local ports, stopping them on exit.
# Exports CAFE_TEST_REDIS_URL, CAFE_TEST_REDIS_PORT, CAFE_TEST_DYNAMODB_ENDPOINT and dummy AWS
# credentials. Expects ROOT to be the repository root.

TOOLS="${CAFE_TOOLS_DIR:-$ROOT/.tools}"
VENV="$TOOLS/venv"
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cafe-run.XXXXXX")"
step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# The exact tool versions: PyPI packages with their hashes (scripts/requirements.txt, from
# scripts/requirements.in by scripts/lock-tools.sh) and Debian packages (scripts/debian-packages.txt).
REQUIREMENTS="$ROOT/scripts/requirements.txt"
DEBIAN_PACKAGES="$ROOT/scripts/debian-packages.txt"

# Installs the pinned Debian packages that are not installed at their pinned version. Debian's
# archive keeps only the newest build of a stable release, so a pin can disappear after a security
# update: then the archive's build of the same release is installed, and the run says so loudly.
install_debian_packages() {
  local wanted=() missing=() line package version installed
  while IFS= read -r line; do
    case "$line" in ''|'#'*) continue ;; esac
    package=${line%%=*}
    version=${line#*=}
    installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
    if [ "$installed" != "$version" ]; then missing+=("$package=$version"); fi
    wanted+=("$package=$version")
  done <"$DEBIAN_PACKAGES"
  if [ "${#missing[@]}" -gt 0 ]; then
    as_root apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --allow-downgrades \
        "${missing[@]}" >/dev/null; then
      echo "WARNING: apt could not install the pinned ${missing[*]}; installing the archive's" \
        "current build instead (update scripts/debian-packages.txt with scripts/lock-tools.sh --debian)" >&2
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]%%=*}" >/dev/null
    fi
  fi
  for line in "${wanted[@]}"; do
    package=${line%%=*}
    installed=$(dpkg-query -W -f='${Version}' "$package")
    if [ "$installed" = "${line#*=}" ]; then
      echo "  $package $installed (pinned)"
    else
      echo "  $package $installed (WARNING: pinned ${line#*=})"
    fi
  done
}

# A venv holding exactly scripts/requirements.txt: every package at its pinned version and hash,
# nothing resolved at install time. Reinstalled whenever the lock file changes.
install_python_tools() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha256" digest
  digest=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    PIP_FIND_LINKS='' "$VENV/bin/pip" install -q --disable-pip-version-check \
      --require-hashes --no-deps -r "$REQUIREMENTS"
    "$VENV/bin/pip" check
    echo "$digest" >"$stamp"
  fi
  local tool
  for tool in moto aws-sam-cli cfn-lint cargo-lambda schemathesis ziglang playwright awscli; do
    echo "  $tool $("$VENV/bin/pip" show "$tool" 2>/dev/null | awk '/^Version:/ {print $2}') (pinned)"
  done
  export PATH="$VENV/bin:$PATH"
  export SAM_CLI_TELEMETRY=0
}

install_dependencies() {
  step "Installing the pinned tools (Debian: scripts/debian-packages.txt; PyPI: scripts/requirements.txt)"
  install_debian_packages
  install_python_tools
  # The arm64 standard library for `cargo lambda build --arm64` (rustup keeps it per toolchain).
  if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
  fi
  echo "  $(rustc --version) (the machine's toolchain)"
}

free_port() {
  # The tools' Python once installed; the system's before (scripts/load.sh on the embedded
  # default installs none of the tests' tools).
  local python="$VENV/bin/python"
  [ -x "$python" ] || python=python3
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$name did not start on port $port" >&2
  [ -f "$RUN_DIR/$name.log" ] && tail -20 "$RUN_DIR/$name.log" >&2
  return 1
}

SERVICE_PIDS=()
stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$RUN_DIR/redis.pid" ]; then kill "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null || true; fi
  # A daemon just signalled may still write its log: a leftover temp dir must not fail the run.
  rm -rf "$RUN_DIR" 2>/dev/null || true
}
trap stop_services EXIT

MOTO_PID=""
start_moto() {
  MOTO_PORT=$(free_port)
  # moto's transactions are not thread-safe: serve one request at a time, as DynamoDB serialises
  # conflicting transactions (docs/dynamodb.md).
  "$VENV/bin/python" "$ROOT/scripts/moto_serial.py" 127.0.0.1 "$MOTO_PORT" >>"$RUN_DIR/moto.log" 2>&1 &
  MOTO_PID=$!
  SERVICE_PIDS+=("$MOTO_PID")
  wait_for_port "$MOTO_PORT" moto
  export CAFE_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
}

# A fresh, empty moto in place of the running one. moto copies every table it holds on each
# TransactWriteItems (its rollback), so after the whole suite one transaction can take longer
# than the functions' 3 s dependency timeout: a later step that compares answers starts clean.
restart_moto() {
  step "A fresh moto (the suites' tables make its transactions slow)"
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  start_moto
  echo "dynamodb: $CAFE_TEST_DYNAMODB_ENDPOINT"
}

start_services() {
  step "Starting Redis and moto (DynamoDB-compatible) on free ports"
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis.log"
  wait_for_port "$REDIS_PORT" redis
  start_moto
  export CAFE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  export CAFE_TEST_REDIS_PORT="$REDIS_PORT"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  echo "redis: $CAFE_TEST_REDIS_URL   dynamodb: $CAFE_TEST_DYNAMODB_ENDPOINT"
}
