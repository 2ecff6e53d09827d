#!/usr/bin/env bash
# Prints the size of every function's bootstrap built by `cargo lambda build --release --arm64`
# as a Markdown table (the README quotes it). Fails if a function of the route table has none.
#
#   scripts/binary-sizes.sh            reads $CARGO_TARGET_DIR or ./target
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAMBDA_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/lambda"

missing=0
total=0
printf '| function | bootstrap size | bytes |\n|---|---:|---:|\n'
for dir in "$ROOT"/functions/*/; do
  fn="$(basename "$dir")"
  bin="$LAMBDA_DIR/$fn/bootstrap"
  if [ ! -f "$bin" ]; then
    printf '| %s | missing | - |\n' "$fn"
    missing=$((missing + 1))
    continue
  fi
  bytes=$(stat -c %s "$bin")
  total=$((total + bytes))
  printf '| %s | %s MiB | %s |\n' "$fn" "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "$bytes"
done
printf '| **total** | %s MiB | %s |\n' "$(awk -v b="$total" 'BEGIN { printf "%.2f", b / 1048576 }')" "$total"

if [ "$missing" -gt 0 ]; then
  echo "$missing function(s) have no bootstrap under $LAMBDA_DIR: run cargo lambda build --release --arm64 with a --bin per function" >&2
  exit 1
fi
