#!/usr/bin/env bash
# Finds which capabilities webui-monitor needs, by test: runs a command as an unprivileged user
# (nobody) holding only a given capability set, once per set, inside a throwaway network
# namespace with a veth pair (so nothing is attached to the host's interfaces).
#
#   deploy/systemd/check-capabilities.sh                 # the bpf(2) probe (bpf-probe.py)
#   deploy/systemd/check-capabilities.sh -- CMD ARGS...  # any command; IFACE in ARGS is replaced
#                                                        # by the veth interface name
#
# e.g.: check-capabilities.sh -- ./target/release/webui-monitor check --interface IFACE
#
# RLIMIT_MEMLOCK is lowered to 64 KiB for every run: no CAP_SYS_RESOURCE / LimitMEMLOCK= needed.
# Needs root, iproute2, setpriv and prlimit (util-linux). Exits non-zero if the documented set
# (the unit's AmbientCapabilities) fails or if any smaller set is also enough (then the unit
# grants too much).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ns="wm-capcheck-$$"
ifname="probe0"

if [[ ${1:-} == "--" ]]; then
    shift
    cmd=("${@//IFACE/$ifname}")
else
    cmd=(/usr/bin/python3 "$here/bpf-probe.py" "$ifname")
fi

# The set the unit grants, read from the unit itself so the two cannot drift apart.
unit="$here/webui-monitor.service"
granted=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr ' ' '\n' | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | paste -sd, -)
[[ -n $granted ]] || { echo "no AmbientCapabilities= in $unit" >&2; exit 2; }

cleanup() { ip netns delete "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add "$ifname" type veth peer name "${ifname}p"
ip -n "$ns" link set "$ifname" up
ip -n "$ns" link set lo up

# Runs the command with exactly the capabilities in $1 (comma list, may be empty).
run_with() {
    local caps=$1 spec="-all"
    [[ -n $caps ]] && spec="-all,$(sed 's/\([a-z_]*\)/+\1/g' <<<"$caps")"
    # RLIMIT_MEMLOCK at 64 KiB: BPF memory must be charged to the memory cgroup (Linux >= 5.11),
    # so the 16 MiB ring buffer must still be created.
    prlimit --memlock=65536:65536 -- ip netns exec "$ns" setpriv --reuid=65534 --regid=65534 --clear-groups \
        --inh-caps="$spec" --ambient-caps="$spec" --bounding-set="$spec" \
        --no-new-privs -- "${cmd[@]}"
}

status=0
echo "== granted by the unit: $granted"
if ! run_with "$granted"; then
    echo "FAIL: the unit's capability set is not enough" >&2
    status=1
fi
# Every set with one granted capability removed must fail, or that capability is not needed.
IFS=, read -ra caps <<<"$granted"
for drop in "${caps[@]}"; do
    fewer=$(tr ',' '\n' <<<"$granted" | grep -vx "$drop" | paste -sd, -)
    echo "== without $drop: ${fewer:-none}"
    if run_with "$fewer"; then
        echo "FAIL: $drop is not needed by this command" >&2
        status=1
    fi
done
exit $status
