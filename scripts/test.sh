#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs the pinned tools the tests need (Redis
# server and chromium from Debian; moto's DynamoDB-compatible server, cfn-lint, SAM CLI,
# cargo-lambda, schemathesis, Playwright and awscli from PyPI, exactly as locked in
# scripts/requirements.txt), starts Redis and moto on free local ports, runs formatting, lints,
# every test (in-memory, Redis and DynamoDB suites, the IAM check), the three web screens in a
# headless chromium, the site's upload step against moto's S3, the checks of the template SAM
# really deploys, schemathesis against the local server, `sam build` (the arm64 release build of
# every function) and every function's release binary under cargo-lambda's Lambda emulator, and
# stops what it started.
#
#   scripts/test.sh                      everything
#   SKIP_LAMBDA_BUILD=1 scripts/test.sh  without `sam build` and the emulator run
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
# The crash test builds only with cafe-local's fault-injection feature (off everywhere else).
cargo clippy -p cafe-local --features fault-injection --all-targets -- -D warnings

step "cargo test: unit, handler, HTTP, Redis and DynamoDB suites"
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}"

step "The web screens in Debian's chromium (headless, Playwright): scripts/browser_test.py"
# The debug cafe-local the workspace's `cargo test` just built (before the crash test's step
# rebuilds it with the fault-injection hook); screenshots at 360 and 1280 px stay in
# target/screens/ after the run.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
python "$ROOT/scripts/browser_test.py" --binary "$TARGET_DIR/debug/cafe-local" \
  --out "$TARGET_DIR/screens"

step "cargo test: the crash test, in a debug build with the fault-injection hook (its only build)"
cargo test -p cafe-local --features fault-injection --test crash_payments -- --test-threads="${TEST_THREADS:-4}"

step "The site's upload step (scripts/deploy-site.sh) against moto's S3 and CloudFront"
scripts/deploy-site-test.sh

step "The deployed template: samtranslator's CloudFormation checked against the code"
python "$ROOT/scripts/translate-template.py" template.yaml >"$RUN_DIR/translated-template.json"
CAFE_TRANSLATED_TEMPLATE="$RUN_DIR/translated-template.json" \
  cargo test -p cafe-local --test translated_template -- --ignored

step "schemathesis: fuzz the local server from docs/openapi.yaml"
scripts/schemathesis.sh

step "Template checks: cfn-lint and sam validate --lint"
cfn-lint template.yaml
sam validate --lint --template-file template.yaml --region us-east-1

if [ -z "${SKIP_LAMBDA_BUILD:-}" ]; then
  # sam build runs `cargo lambda build --release --arm64 --bin <name>` once per function, one
  # after the other: 23 cargo runs, each linking one binary (fat LTO, one codegen unit: a single
  # core). Building every binary first in ONE such run, with the same flags and the same package
  # selection (the workspace root, `--bin` filters), lets cargo link two at a time on two cores;
  # sam's own runs then find every binary fresh and only package it.
  step "cargo lambda build --release --arm64: every function's binary in one run"
  started=$SECONDS
  bins=()
  for dir in functions/*/; do bins+=(--bin "$(basename "$dir")"); done
  cargo lambda build --release --arm64 "${bins[@]}"
  echo "cargo lambda build took $((SECONDS - started)) s for $((${#bins[@]} / 2)) binaries"
  step "sam build: packages each function's bootstrap (.aws-sam/build)"
  started=$SECONDS
  sam build --beta-features --template-file template.yaml
  echo "sam build took $((SECONDS - started)) s"
  scripts/binary-sizes.sh
  # What sam build packaged is what deploys: one arm64 ELF `bootstrap` per function.
  for bootstrap in .aws-sam/build/*Function/bootstrap; do
    machine=$(od -An -t x1 -j 18 -N 2 "$bootstrap" | tr -d ' ')
    if [ "$machine" != "b700" ]; then
      echo "$bootstrap is not an aarch64 ELF executable (e_machine $machine)" >&2
      exit 1
    fi
  done
  echo "$(ls .aws-sam/build/*Function/bootstrap | wc -l) arm64 bootstraps in .aws-sam/build"
  step "What sam build packaged carries no fault-injection hook"
  CAFE_SAM_BUILD_DIR="$ROOT/.aws-sam/build" \
    cargo test -p cafe-local --test deployed_binaries -- --ignored

  restart_moto
  step "Every function's release binary under cargo-lambda's Lambda emulator"
  scripts/emulator.sh
fi

step "All checks passed"
