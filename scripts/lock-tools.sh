#!/usr/bin/env bash
# Regenerates the pinned tool versions the test command installs:
#   scripts/requirements.txt  from scripts/requirements.in (exact versions + sha256 of every file,
#                             every transitive dependency), with pip-tools in a throwaway venv
#   scripts/debian-packages.txt (with --debian) the candidate versions apt sees today
# Review the diff, run scripts/test.sh, and commit both files together.
#
#   scripts/lock-tools.sh            the PyPI lock
#   scripts/lock-tools.sh --debian   the PyPI lock and the Debian versions
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/cafe-lock.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --disable-pip-version-check 'pip-tools==7.6.2'
# PIP_FIND_LINKS may name a machine-local wheel directory: keep it out of the lock.
PIP_FIND_LINKS='' "$WORK/venv/bin/pip-compile" -q --generate-hashes --strip-extras --allow-unsafe \
  --no-emit-find-links --output-file=scripts/requirements.txt scripts/requirements.in
echo "scripts/requirements.txt: $(grep -c '==' scripts/requirements.txt) pinned packages"

if [ "${1:-}" = "--debian" ]; then
  tmp="$WORK/debian-packages.txt"
  grep '^#' scripts/debian-packages.txt >"$tmp"
  for package in $(grep -v '^#' scripts/debian-packages.txt | cut -d= -f1); do
    version=$(apt-cache policy "$package" | awk '/Candidate:/ {print $2}')
    echo "$package=$version" >>"$tmp"
  done
  mv "$tmp" scripts/debian-packages.txt
  cat scripts/debian-packages.txt
fi
