#!/usr/bin/env bash
# The whole test suite: install what is missing, build optimized (the engines walk millions of
# pages; a debug build walks them ten times slower), run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh --test
swift build -c release --build-tests
# The browser test must run here, not show as skipped.
PINREPLAY_BROWSER_TESTS=required swift test -c release --skip-build "$@"
