"""A lease's holder is judged dead only when that is certain: on this host, and its process
gone or this very pid in a new life."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from services.orders.leases import gone, holder


def test_only_a_certainly_dead_holder_is_gone() -> None:
    me = holder()
    assert not gone(me)
    host, pid, _token = me.split("/")
    assert gone(f"{host}/{pid}/00000000")  # this pid, an earlier life: a restarted container
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    assert gone(f"{host}/{int(child.stdout)}/abcdef12")  # exited and reaped
    assert not gone(f"{host}/{os.getppid()}/abcdef12")  # alive
    assert not gone(f"another-{socket.gethostname()}/{child.stdout.decode().strip()}/x")
    assert not gone(None) and not gone("") and not gone("junk")
