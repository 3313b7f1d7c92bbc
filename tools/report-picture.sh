#!/usr/bin/env bash
# The README's picture: the HTML report of the seed's boot (traces/gpu-16g-bar.vptr, v4.16
# against v4.17-rc1), rendered by headless Chromium to docs/report.png (the top of the page, to
# the first divergence's chunk lists). Needs Chromium (tools/ensure-deps.sh --test installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh --test
swift build -c release --product pinreplay >&2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
set +e
.build/release/pinreplay replay traces/gpu-16g-bar.vptr --format html -o "$scratch/report.html"
rc=$?
set -e
[ "$rc" -le 1 ] || exit "$rc"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$scratch/profile" --window-size=1280,2000 \
    --screenshot="$PWD/docs/report.png" "file://$scratch/report.html" 2>/dev/null
echo "docs/report.png"
