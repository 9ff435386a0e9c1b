"""Orders errors.

OrdersError (ServiceError)
├── MissingIdempotencyKey   400 idempotency-key-missing
├── UnknownOrder            404 unknown-order (also for another customer's order)
├── UnknownReturn           404 unknown-return
├── UnknownReceipt          404 unknown-receipt
├── IdempotencyInFlight     409 idempotency-key-in-flight (the first request still runs)
├── IllegalTransition       409 illegal-transition
├── OutOfStock              409 out-of-stock (refused by the checkout gate, no order)
├── NotReturnable           409 not-returnable (lines not in the purchase, or returned already)
├── ReturnWindowClosed      409 return-window-closed
├── WrongPickupCode         403 wrong-pickup-code
├── IdempotencyKeyReused    422 idempotency-key-reused (same key, another body)
├── BadOrder                422 bad-order (unknown SKUs, mixed currencies…)
├── SagaStalled             503 order-in-progress (a step's service does not answer yet)
└── CheckoutBusy            503 checkout-busy (shed: too many checkouts at once)
"""

from __future__ import annotations

from services.kit.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
    Unprocessable,
)

__all__ = [
    "BadOrder",
    "CheckoutBusy",
    "IdempotencyInFlight",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "MissingIdempotencyKey",
    "NotReturnable",
    "OrdersError",
    "OutOfStock",
    "ReturnWindowClosed",
    "SagaStalled",
    "UnknownOrder",
    "UnknownReceipt",
    "UnknownReturn",
    "WrongPickupCode",
]


class OrdersError(ServiceError):
    pass


class MissingIdempotencyKey(BadRequest, OrdersError):
    slug, title = "idempotency-key-missing", "Idempotency-Key required"

    def __init__(self, detail: str = "this request needs an Idempotency-Key header") -> None:
        super().__init__(detail)


class UnknownOrder(NotFound, OrdersError):
    slug, title = "unknown-order", "Unknown order"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id}", order_id=order_id)


class UnknownReturn(NotFound, OrdersError):
    slug, title = "unknown-return", "Unknown return"

    def __init__(self, return_id: str) -> None:
        super().__init__(f"no return {return_id}", return_id=return_id)


class UnknownReceipt(NotFound, OrdersError):
    slug, title = "unknown-receipt", "Unknown receipt"

    def __init__(self, receipt: str) -> None:
        super().__init__(f"no store sale {receipt}", receipt=receipt)


class IdempotencyInFlight(Conflict, OrdersError):
    slug, title = "idempotency-key-in-flight", "A request with this key is in progress"

    def __init__(self) -> None:
        super().__init__(
            "the first request with this Idempotency-Key has not finished; retry later",
            headers={"Retry-After": "1"},
        )


class IllegalTransition(Conflict, OrdersError):
    slug, title = "illegal-transition", "Illegal transition"

    def __init__(self, order_id: str, status: str, target: str) -> None:
        super().__init__(
            f"order {order_id} is {status}; it cannot become {target}",
            order_id=order_id,
            order_status=status,
            target=target,
        )


class WrongPickupCode(Forbidden, OrdersError):
    slug, title = "wrong-pickup-code", "Wrong pick-up code"


class IdempotencyKeyReused(Unprocessable, OrdersError):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with another request"

    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was used with a different request body")


class BadOrder(Unprocessable, OrdersError):
    slug, title = "bad-order", "The order cannot be taken"


class NotReturnable(Conflict, OrdersError):
    slug, title = "not-returnable", "Lines cannot be returned"


class ReturnWindowClosed(Conflict, OrdersError):
    slug, title = "return-window-closed", "Return window closed"


class SagaStalled(Unavailable, OrdersError):
    slug, title = "order-in-progress", "The order is still being processed"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id} waits for a service that does not answer; it will be finished "
            "in the background: retry with the same Idempotency-Key",
            headers={"Retry-After": "5"},
            order_id=order_id,
        )


class OutOfStock(Conflict, OrdersError):
    slug, title = "out-of-stock", "Out of stock"


class CheckoutBusy(Unavailable, OrdersError):
    slug, title = "checkout-busy", "Too many checkouts at once"
