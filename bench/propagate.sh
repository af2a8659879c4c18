#!/bin/sh
# Times propagating one statement into a ~1,000-line script (target: under 50 ms).
set -e
cd "$(dirname "$0")/.."
exec cargo run --release -q -p flor-core --example propagate_bench "$@"
