#!/usr/bin/env bash
# Runs skiff's benchmarks and prints their figures (markdown) for
# docs/benchmarks.md. Usage: hack/bench/run.sh [apibench flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x bin/skiff ] || make build
echo "## apibench ($(date -u +%Y-%m-%d), $(nproc) cores)"
go run ./hack/bench/apibench -bin bin/skiff "$@"
echo "## cmbench"
go run ./hack/bench/cmbench -bin bin/skiff
