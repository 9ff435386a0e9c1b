"""Storage on SQLite and PostgreSQL: the schema migrates itself at start-up."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import MetaData

from services.kit.storage import Database


async def test_start_up_adds_a_new_column_to_an_existing_table(database_url: str) -> None:
    from sqlalchemy import BigInteger, Column, String, Table, insert, select

    first = MetaData()
    Table("grow", first, Column("id", String(8), primary_key=True))
    db = Database(database_url)
    try:
        await db.create_all(first)
        async with db.write() as conn:
            await conn.execute(insert(first.tables["grow"]).values(id="a"))
        second = MetaData()
        grown = Table(
            "grow",
            second,
            Column("id", String(8), primary_key=True),
            Column("units", BigInteger, nullable=False, server_default="0"),
        )
        await db.create_all(second)
        await db.create_all(second)  # and again: nothing left to do
        async with db.read() as conn:
            assert (await conn.execute(select(grown.c.units))).scalar_one() == 0
    finally:
        await db.dispose()


@pytest.mark.parametrize("cancels", [1, 2])
async def test_a_write_cancelled_mid_statement_leaves_the_database_writable(
    tmp_path, cancels: int
) -> None:
    """A worker stopped or a batch abandoned while its statement runs in SQLite's thread:
    the connection is thrown away, and its transaction must go with it. Left pending, the
    statement kept the closed connection alive holding the write lock, and every later
    write waited out the busy timeout and failed."""
    import threading

    from sqlalchemy import event, text

    entered, release = threading.Event(), threading.Event()

    def hold() -> int:  # runs inside the statement, on the driver's thread
        entered.set()
        release.wait(30)
        return 1

    db = Database(f"sqlite:///{tmp_path}/held.db")
    event.listen(
        db.engine.sync_engine,
        "connect",
        lambda dbapi, _record: dbapi.run_async(lambda c: c.create_function("hold", 0, hold)),
    )
    try:
        async with db.write() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def stopped_mid_statement() -> None:
            async with db.write() as conn:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
                await conn.execute(text("SELECT hold() UNION ALL SELECT 2"))

        victim = asyncio.create_task(stopped_mid_statement())
        await asyncio.to_thread(entered.wait, 30)
        victim.cancel()
        for _ in range(cancels - 1):  # and again while it cleans up, as a shutdown might
            for _ in range(20):
                await asyncio.sleep(0)
            victim.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await victim

        async with db.write() as conn:
            await conn.execute(text("PRAGMA busy_timeout=1000"))  # fail fast, not in 30 s
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        async with db.read() as conn:
            rows = (await conn.execute(text("SELECT x FROM t"))).scalars().all()
        assert rows == [2]  # the cancelled insert was rolled back, the next one committed
    finally:
        release.set()
        await db.dispose()
