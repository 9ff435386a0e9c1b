"""The random generator of the mesh's own code: backoff jitter, early refreshes, request and
trace ids. Not the process-wide `random` module's, which is shared with whatever else runs in
the process (a test's hypothesis drawing examples saw its state change under it). Not for
secrets: those come from `secrets`."""

from __future__ import annotations

import random

__all__ = ["rng"]

rng = random.Random()
