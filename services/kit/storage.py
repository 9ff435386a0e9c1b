"""Storage: SQLAlchemy 2 Core on asyncio, one code path for SQLite and PostgreSQL.

SQLite (aiosqlite, WAL) is the embedded default, one file per service under the data
directory; PostgreSQL (asyncpg) when DATABASE_URL names it. SQLite allows one writer at a
time: writes in this process queue on an asyncio lock instead of spinning on SQLITE_BUSY,
and the driver's busy timeout covers other processes.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy import MetaData

__all__ = ["Database", "as_utc", "normalize_url"]


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and pick the async driver."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def as_utc(value: datetime) -> datetime:
    """A stored time, timezone-aware: SQLite gives back naive datetimes (written as UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Database:
    """An async engine plus the read/write discipline both backends need."""

    def __init__(self, url: str, *, echo: bool = False, timeout_s: float = 10.0) -> None:
        """`timeout_s` bounds a wait for a lock (SQLite), for a connection from the pool
        and for one command (PostgreSQL): a sick database answers 503, never hangs."""
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.split(":///", 1)[-1]
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": timeout_s}
        else:
            kwargs.update(
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                pool_timeout=timeout_s,
                connect_args={"command_timeout": timeout_s, "timeout": timeout_s},
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "close", _roll_back_before_close)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits on success and rolls back on error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def create_all(self, metadata: MetaData) -> None:
        """Create missing tables and indexes, and add missing columns: the schema only ever
        grows (a new column is nullable or has a server default), so start-up migrates."""
        async with self.write() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(_add_missing_columns, metadata)

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _add_missing_columns(sync_conn: Any, metadata: MetaData) -> None:
    from sqlalchemy import inspect
    from sqlalchemy.schema import CreateColumn

    inspector = inspect(sync_conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = CreateColumn(column).compile(dialect=sync_conn.dialect)
                sync_conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}'))


def _roll_back_before_close(dbapi_connection: Any, _record: Any) -> None:
    """End the transaction of a SQLite connection about to be closed.

    A write cancelled while its statement runs on aiosqlite's thread makes SQLAlchemy throw
    the connection away. sqlite3's close() then leaves a connection with a pending statement
    open as a zombie that keeps its transaction and the database's write lock: every later
    write waited out the busy timeout and failed. The rollback is queued on the connection's
    thread ahead of the close, so it runs first even if this wait is cancelled too.
    """
    try:
        dbapi_connection.rollback()
    except asyncio.CancelledError:
        # cancelled again while waiting: the rollback still runs first, and the task gets
        # its cancellation back at its next await, after the connection is closed
        task = asyncio.current_task()
        if task is not None:
            task.cancel()
    except Exception:  # noqa: S110
        pass  # outside a greenlet (garbage collection) or closed already: nothing to end


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
