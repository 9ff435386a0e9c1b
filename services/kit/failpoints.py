"""Failpoints: named places where a crash test makes the process die for real.

`FAILPOINTS=orders.saga.reserve.called,...` in the environment arms them; an armed
failpoint SIGKILLs its own process when reached: no cleanup, no flush, no `finally`, as a
power cut or an OOM kill would. Unarmed (production: the variable is unset), a failpoint is
one lookup in an empty frozenset.

Written by hand: the Python failpoint libraries are test doubles patched into a module;
this needs a real process to die at a precise step of its real code path.
"""

from __future__ import annotations

import logging
import os
import signal

__all__ = ["failpoint"]

log = logging.getLogger("retailmesh.failpoints")
_ARMED = frozenset(p.strip() for p in os.environ.get("FAILPOINTS", "").split(",") if p.strip())


def failpoint(name: str) -> None:
    if name in _ARMED:
        log.critical("failpoint %s: killing process %d", name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
