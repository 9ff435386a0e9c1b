"""Who holds a saga's lease, and whether that holder is gone.

A saga's lease (`lease_until`) keeps other replicas off it while a driver works on it; a
driver that crashes leaves its lease to run out (`saga_lease_s`). The lease also names its
holder (host, process id, a token of the process's life), so that a process starting on
the same host can tell the leases of a predecessor that died (its process is no more, or
had this very process id: a container restarted) from a live sibling's, and take them over
at once instead of waiting them out. Holders on other hosts are never judged: their leases
run out as before.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

__all__ = ["gone", "holder"]

_HOST = socket.gethostname()[:40]
_TOKEN = uuid.uuid4().hex[:8]


def holder() -> str:
    """This process, as a lease names it (the pid read now: a forked worker is another)."""
    return f"{_HOST}/{os.getpid()}/{_TOKEN}"


def gone(name: str | None) -> bool:
    """Whether the holder named is certainly dead: on this host, and either not running or
    an earlier life of this very process id."""
    if not name:
        return False
    host, _, rest = name.partition("/")
    pid_text, _, token = rest.partition("/")
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return token != _TOKEN  # the same pid in a new life: the old one died
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that exited and was not reaped yet still answers `kill(pid, 0)`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
