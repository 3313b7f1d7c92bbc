#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
swift build --build-tests
swift test --skip-build "$@"
