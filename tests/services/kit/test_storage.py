"""Storage on SQLite and PostgreSQL: the schema migrates itself at start-up."""

from __future__ import annotations

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
