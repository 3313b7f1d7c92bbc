#!/usr/bin/env bash
# Records the public bug-report logs of traces/logs/ into the goldens traces/bugreport-*.txt:
# each golden is its header (what the log shows, why) followed by what `pinreplay record`
# makes of the log as published. Run from the repository root after a change to recording;
# then `pinreplay bless` the results. A test re-records every log and compares.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/pinreplay
[ -x "$bin" ] || swift build -c release --product pinreplay >/dev/null

# NAME: the log under traces/logs/NAME.log; extra record arguments follow.
record() {
    local name=$1
    shift
    local out=traces/bugreport-$name.txt
    local tmp
    tmp=$(mktemp)
    "$bin" record --qemu-trace "traces/logs/$name.log" "$@" --text -o "$tmp" 2>/dev/null
    { cat "traces/logs/$name.header"; cat "$tmp"; } > "$out.tmp"
    mv "$out.tmp" "$out"
    rm -f "$tmp"
}

log=traces/logs/qemu-devel-2020-01-13-pcie-bar-hole.log
record qemu-devel-2020-01-13-pcie-bar-hole --lspci "$log" --guest-lspci "$log"
record launchpad-1879175-gvtd-3.1-vs-5.0
record qemu-devel-2021-05-05-overlapping-regions
record launchpad-1731347-sas2008-efault
record ubuntu-forums-2016-10-10-i350-vf-efault
