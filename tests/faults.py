"""Faults injected into real parts: database errors raised where the driver would raise
them (a full disk, a killed session), for a number of statements."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from services.kit.storage import Database

__all__ = ["DatabaseFault", "failing_database"]


class DatabaseFault:
    """How many statements are still to fail, and how many did."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.raised = 0

    def __call__(self, *_: Any) -> None:
        if self.left > 0:
            self.left -= 1
            self.raised += 1
            # what SQLAlchemy raises when the driver says "disk I/O error" or loses its session
            raise OperationalError("injected", {}, Exception("disk I/O error (injected)"))


@contextlib.contextmanager
def failing_database(db: Database, count: int) -> Iterator[DatabaseFault]:
    """The next `count` statements on `db` fail as a full disk makes them fail."""
    fault = DatabaseFault(count)
    event.listen(db.engine.sync_engine, "before_cursor_execute", fault)
    try:
        yield fault
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", fault)
