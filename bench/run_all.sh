#!/usr/bin/env bash
# `make bench`: every benchmark, each timing cnntool and the plain way of doing the same job
# on the same data in one run, and printing the ratio. Results go to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in bench/bench_*.py; do
  printf '\n== %s\n' "$script"
  python "$script"
done
