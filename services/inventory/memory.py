"""An in-process stand-in for `AtsStore`, for the embedded mode without Redis.

Same contract, one process: every method does its check-and-change without awaiting in
between, so on one event loop each is as atomic as the Lua scripts are in Redis. Nothing
survives a restart, and replicas do not share it; the embedded mode has neither.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

__all__ = ["MemoryAtsStore"]


class _Locks:
    """The two commands of Redis the single flight uses, for one process."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def set(self, key: str, _value: str, *, nx: bool, px: int) -> bool:
        now = time.monotonic()
        if nx and self._until.get(key, 0) > now:
            return False
        self._until[key] = now + px / 1000
        return True

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._until.pop(key, None)


class MemoryAtsStore:
    def __init__(self) -> None:
        self.redis: Any = _Locks()
        self._pos: dict[str, dict[bytes, bytes]] = {}
        self._res: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._exp: defaultdict[str, dict[str, float]] = defaultdict(dict)
        self._r: dict[str, dict[str, str]] = {}
        self._owners: defaultdict[str, set[str]] = defaultdict(set)

    def lock_key(self, sku: str) -> str:
        return f"ats:{sku}:lock"

    def _purge(self, sku: str, now: float) -> int:
        gone = [m for m, expires in self._exp[sku].items() if expires <= now]
        for member in gone:
            rid, loc, qty = member.rsplit("|", 2)
            self._res[sku][loc] -= int(qty)
            del self._exp[sku][member]
            if self._r.get(rid, {}).get("status") == "held":
                self._r[rid]["status"] = "expired"
        return len(gone)

    async def read(
        self, sku: str, now: float
    ) -> tuple[int, dict[bytes, bytes], dict[bytes, bytes]]:
        expired = self._purge(sku, now)
        res = {k.encode(): str(v).encode() for k, v in self._res[sku].items()}
        return expired, dict(self._pos.get(sku, {})), res

    async def write(
        self,
        sku: str,
        fetched_at: float,
        delta: float,
        positions: list[tuple[str, int, int]] | None,
        ttl_s: int,
    ) -> None:
        pos = self._pos.setdefault(sku, {})
        pos[b"_fetched"] = repr(fetched_at).encode()
        pos[b"_delta"] = repr(delta).encode()
        pos[b"_known"] = b"1" if positions is not None else b"0"
        pos[b"_source"] = b"erp-fetch"
        for loc, on_hand, version in positions or ():
            if version > int(pos.get(b"v:" + loc.encode(), b"-1")):
                pos[b"oh:" + loc.encode()] = str(on_hand).encode()
                pos[b"v:" + loc.encode()] = str(version).encode()

    async def apply_position(self, sku: str, loc: str, on_hand: int, version: int) -> bool:
        pos = self._pos.get(sku)
        if pos is None or pos.get(b"_known") != b"1":
            return False
        if version > int(pos.get(b"v:" + loc.encode(), b"-1")):
            pos[b"oh:" + loc.encode()] = str(on_hand).encode()
            pos[b"v:" + loc.encode()] = str(version).encode()
            pos[b"_source"] = b"event"
            return True
        return False

    async def reserve(
        self,
        sku: str,
        rid: str,
        owner: str,
        qty: int,
        now: float,
        expires: float,
        fingerprint: str,
        locations: list[tuple[str, int]],
        principal: str = "",
    ) -> list[Any]:
        self._purge(sku, now)
        if rid in self._r:
            r = self._r[rid]
            return ["exists", r["status"], r["loc"], 1 if r["fp"] == fingerprint else 0]
        pos = self._pos.get(sku)
        if pos is None or pos.get(b"_known") != b"1":
            return ["miss"]
        best = 0
        for loc, safety in locations:
            on_hand = int(pos.get(b"oh:" + loc.encode(), b"0"))
            ats = max(on_hand - self._res[sku][loc] - safety, 0)
            if ats >= qty:
                self._res[sku][loc] += qty
                self._exp[sku][f"{rid}|{loc}|{qty}"] = expires
                self._r[rid] = {
                    "sku": sku,
                    "loc": loc,
                    "qty": str(qty),
                    "owner": owner,
                    "status": "held",
                    "expires": repr(expires),
                    "fp": fingerprint,
                    "by": principal,
                }
                self._owners[owner].add(rid)
                return ["ok", loc]
            best = max(best, ats)
        return ["refused", best]

    async def settle(self, rid: str, now: float, action: str) -> tuple[str, bool]:
        r = self._r.get(rid)
        if r is None:
            return "missing", False
        sku, loc, qty = r["sku"], r["loc"], int(r["qty"])
        self._purge(sku, now)
        status = r["status"]
        member = f"{rid}|{loc}|{qty}"
        if action == "confirm":
            if status == "held":
                self._exp[sku][member] = math.inf
                r["status"], r["expires"] = "confirmed", ""
                return "confirmed", True
            return status, False
        if status in ("held", "confirmed"):
            self._res[sku][loc] -= qty
            self._exp[sku].pop(member, None)
            r["status"] = "committed" if action == "commit" else "released"
            r["expires"] = ""
            return r["status"], True
        return status, False

    async def owner_reservations(self, owner: str) -> list[str]:
        return sorted(self._owners.get(owner, ()))

    async def reservation(self, rid: str) -> dict[str, str] | None:
        r = self._r.get(rid)
        return dict(r) if r is not None else None
