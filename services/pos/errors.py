"""POS errors.

PosError (ServiceError)
├── NotYourStore           403 not-your-store   (a till posts only for its own store)
└── UnknownTransaction     404 unknown-transaction
"""

from __future__ import annotations

from services.kit.errors import Forbidden, NotFound, ServiceError

__all__ = ["NotYourStore", "PosError", "UnknownTransaction"]


class PosError(ServiceError):
    pass


class NotYourStore(Forbidden, PosError):
    slug, title = "not-your-store", "Not your store"

    def __init__(self, store_id: str) -> None:
        super().__init__(
            f"this caller may not post or read transactions of {store_id}", store_id=store_id
        )


class UnknownTransaction(NotFound, PosError):
    slug, title = "unknown-transaction", "Unknown transaction"

    def __init__(self, transaction_id: str) -> None:
        super().__init__(f"no transaction {transaction_id}", transaction_id=transaction_id)
