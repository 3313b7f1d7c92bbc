#!/usr/bin/env bash
# tools/fuzz.sh TARGET SECONDS: runs one libFuzzer target (text, binary, replay, roundtrip) for
# SECONDS, from a seed corpus made of traces/ and the test fixtures. Exit 0 when it found
# nothing; otherwise libFuzzer's report, the input (hex) and exit 1.
#   Reproduce a saved input without the fuzzer:  swift build -c release --product pinreplay-fuzz
#                                                .build/release/pinreplay-fuzz TARGET FILE
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: tools/fuzz.sh text|binary|replay|roundtrip SECONDS}
seconds=${2:?usage: tools/fuzz.sh TARGET SECONDS}
case $target in text|binary|replay|roundtrip) ;; *) echo "unknown target '$target'" >&2; exit 2 ;; esac

tools/ensure-deps.sh --test
swift build -c release --scratch-path .build-fuzz --product pinreplay-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING >&2

work=$(mktemp -d /tmp/pinreplay-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
case $target in
text|replay)
    # Numbered: the fixtures and traces/ share some names.
    n=0
    for f in traces/*.txt Tests/Fixtures/*.txt Tests/Fixtures/examples/*.txt Tests/Fixtures/examples/later/*.txt; do
        n=$((n + 1)); cp "$f" "$work/corpus/$n-$(basename "$f")"
    done ;;
binary) cp traces/*.vptr "$work/corpus/" ;;
roundtrip)
    # The decompressed record stream of each binary trace (zstd skips the header and trailer
    # frames), re-cut as the target reads it: type byte, length byte, payload.
    for f in traces/*.vptr; do
        zstd -q -d -c "$f" | python3 -c '
import sys
data = sys.stdin.buffer.read(); out = bytearray(); i = 0
def varint():
    global i
    v = s = 0
    while True:
        b = data[i]; i += 1; v |= (b & 0x7f) << s; s += 7
        if b < 0x80: return v
while i < len(data) and len(out) < 4096:
    t = varint(); n = varint(); p = data[i:i + n]; i += n
    if t < 32 and n < 256: out += bytes([t, n]) + p
sys.stdout.buffer.write(out)' > "$work/corpus/$(basename "$f").rec"
    done ;;
esac

status=0
PINREPLAY_FUZZ_TARGET=$target .build-fuzz/release/pinreplay-fuzz "$work/corpus" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" 2>"$work/log" || status=$?
grep -E '^(Done|stat::number_of_executed_units)' "$work/log" >&2 || true
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    tail -40 "$work/log" >&2
    for a in "$work"/artifacts/*; do
        [ -e "$a" ] || continue
        echo "input $(basename "$a") ($(stat -c %s "$a") bytes):" >&2
        od -A d -t x1z "$a" | head -64 >&2
    done
    exit 1
fi
echo "fuzz $target: nothing found in $seconds s" >&2
