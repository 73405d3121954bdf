"""Derive the runner's seccomp profile from a container engine's default one.

    python3 docker/seccomp/derive.py [/usr/share/containers/seccomp.json] > docker/seccomp/runner.json

bubblewrap, inside the runner's container, creates user, mount, PID, network, IPC and
UTS namespaces, mounts a fresh /proc and tmpfs, pivots into the new root and names
the sandbox's host. The default profile of containers-common (podman, CRI-O) already
allows `unshare`, `clone`, `mount`, `umount2`, `pivot_root` and `setns` without
capabilities; it allows `sethostname` and `setdomainname` only with CAP_SYS_ADMIN,
which the runner does not have. This profile is that default with those two allowed:
everything else the default refuses (bpf, perf_event_open, kexec, module loading,
keyctl, ...) stays refused, which `seccomp=unconfined` would not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DEFAULT = Path("/usr/share/containers/seccomp.json")
NAMESPACE_CALLS = {"unshare", "clone", "clone3", "mount", "umount2", "pivot_root", "setns"}
HOST_NAME_CALLS = {"sethostname", "setdomainname"}


def derive(profile: dict[str, Any]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = profile["syscalls"]
    unconditional = next(rule for rule in rules if rule["action"] == "SCMP_ACT_ALLOW"
                         and not rule.get("args") and not rule.get("includes") and not rule.get("excludes"))
    missing = NAMESPACE_CALLS - set(unconditional["names"])
    if missing:
        raise SystemExit(f"this default profile refuses {sorted(missing)} without capabilities: "
                         "start from containers-common's profile")
    for rule in rules:
        rule["names"] = [name for name in rule["names"] if name not in HOST_NAME_CALLS]
    unconditional["names"] = sorted({*unconditional["names"], *HOST_NAME_CALLS})
    profile["syscalls"] = [rule for rule in rules if rule["names"]]
    return profile


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    json.dump(derive(json.loads(source.read_text())), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
