#!/usr/bin/env bash
# Regenerates the generated golden traces under traces/ and blesses every expected result,
# printing what changed. Run it only when a change of the generator, an engine or the world is
# intended (see traces/README.md); pass --accept-fewer when a result may lose divergences.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
swift build -c release --product pinreplay >&2
P=.build/release/pinreplay
gen() { local out=$1; shift; "$P" generate "$@" -o "traces/$out"; }
gen gpu-16g-bar.vptr --profile gpu-16g-bar
gen nic-sriov-4vf.vptr --profile nic-sriov-4vf
gen viommu-churn.vptr --profile viommu-churn --requests 1000
gen hugetlb-1g-64g.vptr --profile hugetlb-1g-64g
gen tight-memlock.vptr --profile tight-memlock
gen intx-no-kvm.vptr --profile intx-no-kvm
gen clean-ram-only-anon.vptr --profile intx-no-kvm --requests 0 --ram 2G --backing anon --ram-only --reboots 1
gen clean-ram-only-thp.vptr --profile intx-no-kvm --requests 0 --ram 8G --backing thp --ram-only --reboots 1
gen clean-ram-only-hugetlb-2m.vptr --profile intx-no-kvm --requests 0 --ram 8G --backing hugetlb-2m --ram-only --reboots 1
"$P" bless "$@"
