#!/usr/bin/env bash
# Installs what pinreplay needs and a fresh machine of this kind may lack: libzstd's headers
# and pkg-config data (Debian libzstd-dev); with --test also QEMU, which a recording test
# starts, and the zstd tool and python3 the fuzz seeds need. Idempotent; quiet when nothing is missing.
set -euo pipefail
need=()
dpkg -s libzstd-dev >/dev/null 2>&1 || need+=(libzstd-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
if [ "${1:-}" = "--test" ]; then
    command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
    # The fuzz seeds and the decode bench read binary traces with the zstd tool.
    command -v zstd >/dev/null 2>&1 || need+=(zstd)
    command -v python3 >/dev/null 2>&1 || need+=(python3)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
