"""API keys as a state machine (active → rotating → retired; revoked from any state):
whatever sequence of create, rotate, revoke and clock advance, exactly the keys the model
says work, and the listing shows each key's real state."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData

from gateway.auth.keys import KeyRefused, KeyStore, hash_key
from services.kit.storage import Database

PEPPER = b"p" * 32
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("create")),
        st.tuples(st.just("rotate"), st.integers(0, 7), st.sampled_from([0, 10, 100])),
        st.tuples(st.just("revoke"), st.integers(0, 7)),
        st.tuples(st.just("advance"), st.sampled_from([1, 9, 50, 200])),
    ),
    max_size=25,
)


class Model:
    """What should hold: each key's stored state and grace end, judged by the clock."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []

    def state(self, key: dict[str, Any], now: datetime) -> str:
        if key["status"] == "rotating":
            return "rotating" if now < key["grace_until"] else "retired"
        return str(key["status"])


async def run(sequence: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        metadata = MetaData()
        store = KeyStore(metadata, PEPPER)
        clock = [START]
        store.clock = lambda: clock[0]
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'gw.db'}")
        await db.create_all(metadata)
        try:
            await store.ensure_partner(db, "acme")
            model = Model()
            for op in sequence:
                now = clock[0]
                if op[0] == "create":
                    new = await store.create(db, partner_id="acme", scopes=[], plan="partner")
                    model.keys.append({"id": new.record.id, "key": new.key, "status": "active"})
                elif op[0] == "advance":
                    clock[0] = now + timedelta(seconds=op[1])
                elif model.keys:
                    key = model.keys[op[1] % len(model.keys)]
                    if op[0] == "revoke":
                        assert await store.revoke(db, key["id"]) is not None
                        key["status"] = "revoked"
                    else:
                        rotated = await store.rotate(db, key["id"], timedelta(seconds=op[2]))
                        if model.state(key, now) == "active":
                            assert rotated is not None, op
                            fresh, _ = rotated
                            key.update(
                                status="rotating", grace_until=now + timedelta(seconds=op[2])
                            )
                            model.keys.append(
                                {"id": fresh.record.id, "key": fresh.key, "status": "active"}
                            )
                        else:
                            assert rotated is None, (op, model.state(key, now))
                listed = {k.id: k for k in await store.list(db)}
                assert set(listed) == {k["id"] for k in model.keys}
                for key in model.keys:
                    expected = model.state(key, clock[0])
                    record = await store.by_hash(db, hash_key(PEPPER, key["key"]))
                    assert record is not None
                    assert record.usable(clock[0]) == (expected in ("active", "rotating")), key
                    assert listed[key["id"]].status == expected, (key, listed[key["id"]])
        finally:
            await db.dispose()


@settings(max_examples=60, deadline=None)
@given(ops)
def test_any_sequence_leaves_exactly_the_intended_keys_working(sequence: list[Op]) -> None:
    asyncio.run(run(sequence))


def test_a_retired_key_stays_retired_when_rotated_again() -> None:
    """The reported fault: a second rotation after the grace brought the old key back."""
    asyncio.run(
        run([("create",), ("rotate", 0, 10), ("advance", 50), ("rotate", 0, 100), ("advance", 1)])
    )


async def test_keys_are_only_for_registered_partners(tmp_path: Path) -> None:
    metadata = MetaData()
    store = KeyStore(metadata, PEPPER)
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await db.create_all(metadata)
    try:
        with pytest.raises(KeyRefused):
            await store.create(db, partner_id="nobody", scopes=[], plan="partner")
    finally:
        await db.dispose()
