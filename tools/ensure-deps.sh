#!/usr/bin/env bash
# Installs what pinreplay needs and a fresh machine of this kind may lack: libzstd's headers
# and pkg-config data (Debian libzstd-dev) and a C compiler for C engines; with --test also
# QEMU, which a recording test starts, the zstd tool and python3 the fuzz seeds need, and Chromium (without its recommended
# desktop packages) with the Liberation fonts, which render the HTML report in a test.
# Idempotent; quiet when nothing is missing.
set -euo pipefail
need=()
bare=()
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
# C engines (--engines ./my-patch.c) are compiled with the system C compiler.
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ "${1:-}" = "--test" ]; then
    command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
    # The fuzz seeds and the decode bench read binary traces with the zstd tool.
    command -v zstd >/dev/null 2>&1 || need+=(zstd)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
    command -v chromium >/dev/null 2>&1 || bare+=(chromium)
    dpkg -s fonts-liberation >/dev/null 2>&1 || bare+=(fonts-liberation)
fi
if [ $((${#need[@]} + ${#bare[@]})) -gt 0 ]; then
    echo "installing: ${need[*]} ${bare[*]}" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    if [ ${#bare[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
    fi
fi
