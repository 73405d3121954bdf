"""The bench's CPU accounting counts processes that have exited, not only the live ones."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.cpu import CpuAccount, tree_cpu

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_tree_counts_a_reaped_child() -> None:
    before = tree_cpu(os.getpid())
    subprocess.run([sys.executable, "-c", BURN], check=True)
    assert tree_cpu(os.getpid()) - before >= 0.25


def test_account_counts_what_its_member_spawned() -> None:
    account = CpuAccount()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}])"],
            preexec_fn=account.enter,
        )
        account.watch(process.pid)
        before = account.seconds()
        assert process.wait(timeout=30) == 0
        if account.folder is not None:  # the tree is gone once its root has exited: only the group still counts
            assert account.seconds() - before >= 0.25
    finally:
        account.close()
    assert account.folder is None or not account.folder.exists()
