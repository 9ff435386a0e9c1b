"""ERP errors.

ErpError (ServiceError)
├── UnknownSku              404 unknown-sku
├── UnknownPosting          404 unknown-posting
├── PostingConflict         409 posting-conflict   (same posting id, other content)
├── InvalidPosting          422 invalid-posting    (unknown SKUs or locations, bad sums)
├── ErpRateLimited          429 erp-rate-limited   (the cloud ERP's own limit)
└── ErpUnavailable          503 erp-unavailable
"""

from __future__ import annotations

from services.kit.errors import (
    Conflict,
    NotFound,
    ServiceError,
    TooManyRequests,
    Unavailable,
    Unprocessable,
)

__all__ = [
    "ErpError",
    "ErpRateLimited",
    "ErpUnavailable",
    "InvalidPosting",
    "PostingConflict",
    "UnknownPosting",
    "UnknownSku",
]


class ErpError(ServiceError):
    pass


class UnknownSku(NotFound, ErpError):
    slug, title = "unknown-sku", "Unknown SKU"

    def __init__(self, sku: str) -> None:
        super().__init__(f"no product with SKU {sku}", sku=sku)


class UnknownPosting(NotFound, ErpError):
    slug, title = "unknown-posting", "Unknown posting"

    def __init__(self, posting_id: str) -> None:
        super().__init__(f"no posting with id {posting_id}", posting_id=posting_id)


class PostingConflict(Conflict, ErpError):
    slug, title = "posting-conflict", "Posting id already used"

    def __init__(self, posting_id: str) -> None:
        super().__init__(
            f"posting {posting_id} was booked with different content; postings are immutable",
            posting_id=posting_id,
        )


class InvalidPosting(Unprocessable, ErpError):
    slug, title = "invalid-posting", "Invalid posting"

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail, errors=errors)


class ErpRateLimited(TooManyRequests, ErpError):
    slug, title = "erp-rate-limited", "ERP rate limit exceeded"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "the ERP accepts a limited number of requests per second",
            headers={"Retry-After": str(retry_after)},
        )


class ErpUnavailable(Unavailable, ErpError):
    slug, title = "erp-unavailable", "ERP unavailable"

    def __init__(self) -> None:
        super().__init__("the ERP failed to answer; try again", headers={"Retry-After": "1"})
