#!/usr/bin/env python3
"""Prints a container seccomp profile with bpf(2) allowed to processes holding CAP_BPF.

Docker >= 23 and containerd >= 1.7 allow bpf(2) with CAP_BPF in their default profiles; older
podman profiles (Debian 12's containers-common 0.50) allow it only with CAP_SYS_ADMIN, so the
capture fails with "failed to create map ...: Operation not permitted" despite CAP_BPF. This
adds the same rule those runtimes have to podman's profile (or the one given) and changes
nothing else:

    deploy/container/seccomp-bpf.py > /etc/containers/seccomp-bpf.json
    podman run --security-opt seccomp=/etc/containers/seccomp-bpf.json ...
"""
import json
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
with open(path) as f:
    profile = json.load(f)
rules = []
for rule in profile["syscalls"]:
    # An explicit errno rule for bpf (for processes without CAP_SYS_ADMIN) would contradict the
    # rule below; without either capability bpf still gets the profile's default action.
    if "bpf" in rule["names"] and rule["action"] != "SCMP_ACT_ALLOW":
        rule = dict(rule, names=[n for n in rule["names"] if n != "bpf"])
        if not rule["names"]:
            continue
    rules.append(rule)
rules.append({"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}})
profile["syscalls"] = rules
json.dump(profile, sys.stdout, indent=1)
print()
