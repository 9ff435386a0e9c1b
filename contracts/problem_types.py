"""Every problem type the mesh answers, once: its slug (the type URI is PROBLEM_TYPE_BASE +
slug), the title every occurrence carries (RFC 9457 section 3.1.3), the status and what it
means to a client. The gateway serves each at its URL (`/problems/<slug>`) and the list at
`/problems`; `tests/test_problem_catalogue.py` fails on a type the code can answer that is not
here, and the fuzzers on one they meet."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.problems import MAX_DETAIL, PROBLEM_TYPE_BASE

__all__ = ["CATALOGUE", "MAX_TYPES", "ProblemType", "by_slug"]

#: the catalogue's size has room to grow to this (`tests/test_problem_catalogue.py` checks)
MAX_TYPES = 200


class ProblemType(msgspec.Struct, frozen=True, kw_only=True):
    """One problem type: what its `type` URI stands for."""

    slug: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{1,63}\Z")]
    type: Annotated[str, msgspec.Meta(max_length=200)]
    title: Annotated[str, msgspec.Meta(max_length=200)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    meaning: Annotated[str, msgspec.Meta(max_length=MAX_DETAIL)]


def _t(slug: str, status: int, title: str, meaning: str) -> ProblemType:
    return ProblemType(
        slug=slug, type=PROBLEM_TYPE_BASE + slug, title=title, status=status, meaning=meaning
    )


CATALOGUE: tuple[ProblemType, ...] = (
    # the request itself
    _t("validation", 400, "Invalid request",
       "The request breaks its published schema; `errors` names each field and why. Fix the "
       "request: the same request fails again."),
    _t("bad-request", 400, "Bad request",
       "The request cannot be read (a malformed header or parameter)."),
    _t("bad-body", 400, "Incomplete request body",
       "The body ended before its declared length, or its framing is broken."),
    _t("bad-path", 400, "Bad path",
       "The path holds characters or segments no route can take (encoded slashes, dot "
       "segments)."),
    _t("idempotency-key-missing", 400, "Idempotency-Key required",
       "This operation changes state and needs an `Idempotency-Key` header, so that a retry "
       "cannot repeat it."),
    _t("unauthenticated", 401, "Unauthenticated",
       "No credentials, or credentials the gateway does not accept (an unknown, revoked or "
       "expired API key; a token with a bad signature, issuer, audience or time)."),
    _t("forbidden", 403, "Forbidden",
       "The caller is known but may not do this: a scope it lacks, or an operator's "
       "operation."),
    _t("cors-refused", 403, "Cross-origin request refused",
       "A browser's cross-origin request from an origin the gateway does not allow."),
    _t("not-your-store", 403, "Not your store",
       "A till acts for its own store only (the store of its token)."),
    _t("wrong-pickup-code", 403, "Wrong pick-up code",
       "The code given at the counter is not the order's."),
    _t("not-found", 404, "Not found",
       "Nothing at this path, or nothing the caller may see (another customer's resource "
       "answers the same)."),
    _t("unknown-version", 404, "Unknown API version",
       "The API has no such version; `GET /openapi.json` lists the published ones."),
    _t("customer-not-found", 404, "Customer not found",
       "Customer service found no customer for the email, card or order given."),
    _t("unknown-channel", 404, "Unknown channel", "The sales channel is not configured."),
    _t("unknown-hold", 404, "Unknown hold", "No points hold with this id."),
    _t("unknown-member", 404, "Unknown member",
       "No loyalty member with this id, card or email, or not the caller's."),
    _t("unknown-order", 404, "Unknown order", "No order with this id, or not the caller's."),
    _t("unknown-posting", 404, "Unknown posting", "The ERP has no posting with this id."),
    _t("unknown-product", 404, "Unknown product", "The catalogue has no such product."),
    _t("unknown-receipt", 404, "Unknown receipt", "No store sale with this receipt."),
    _t("unknown-reservation", 404, "Unknown reservation",
       "No reservation with this id, or not the caller's."),
    _t("unknown-return", 404, "Unknown return", "No return with this id, or not the caller's."),
    _t("unknown-sku", 404, "Unknown SKU", "The SKU is not in the catalogue."),
    _t("unknown-store", 404, "Unknown store", "No store with this id."),
    _t("unknown-transaction", 404, "Unknown transaction",
       "The POS has no transaction with this id."),
    _t("method-not-allowed", 405, "Method not allowed",
       "The path exists, not with this method; `Allow` lists the methods it takes."),
    _t("not-acceptable", 406, "Not acceptable",
       "The answer cannot be given in a media type the request accepts."),
    _t("body-timeout", 408, "Request body too slow",
       "The body did not arrive within the gateway's time for it."),
    _t("conflict", 409, "Conflict", "The request conflicts with the resource's current state."),
    _t("claim-refused", 409, "Return claim refused",
       "A return does not fit the sale it claims (its `code` says why: more units than sold, "
       "a gift card, a higher price)."),
    _t("hold-conflict", 409, "Hold conflict",
       "The hold id is taken by another hold, or the hold is settled already."),
    _t("idempotency-key-in-flight", 409, "A request with this key is in progress",
       "The first request with this Idempotency-Key has not finished; retry after "
       "`Retry-After`."),
    _t("illegal-transition", 409, "Illegal transition",
       "The order's status does not allow this move (`order_status`, `target`)."),
    _t("insufficient-stock", 409, "Insufficient stock",
       "Not enough available-to-sell units for the reservation."),
    _t("member-exists", 409, "Member exists", "A member with this id, card or email exists."),
    _t("out-of-stock", 409, "Out of stock",
       "The order cannot be filled from the stock there is; nothing was taken."),
    _t("posting-conflict", 409, "Posting id already used",
       "The posting id was used for a different posting."),
    _t("reservation-conflict", 409, "Reservation conflict",
       "The reservation id is taken by another reservation, or it is settled already."),
    _t("stock-refused", 409, "Stock refused",
       "The inventory refused the order's reservation; the order was not taken."),
    _t("reservation-lapsed", 409, "Reservation lapsed",
       "The order's reservation expired before it was confirmed; the order was not taken."),
    _t("points-refused", 409, "Points refused",
       "Loyalty refused the order's points hold; the order was not taken."),
    _t("points-hold-lapsed", 409, "Points hold lapsed",
       "The order's points hold expired before it was redeemed; the order was not taken."),
    _t("rejected", 409, "Order rejected", "The order was refused by a step of its checkout."),
    _t("not-returnable", 409, "Lines cannot be returned",
       "Return lines that are not in the purchase, or more units than are left to return; "
       "`errors` names each line."),
    _t("return-window-closed", 409, "Return window closed",
       "The purchase is older than the return window (`RETURN_WINDOW_DAYS`)."),
    _t("version-retired", 410, "API version retired",
       "This version is gone; its successor is in the `Link` header."),
    _t("payload-too-large", 413, "Payload too large",
       "The body is larger than this route takes (`x-max-body-bytes` in the spec)."),
    _t("uri-too-long", 414, "URI too long", "The request target is longer than the gateway takes."),
    _t("unsupported-media-type", 415, "Unsupported media type",
       "The body must be `application/json`."),
    _t("unprocessable", 422, "Unprocessable request",
       "The request is valid but breaks a business rule the `detail` states."),
    _t("bad-order", 422, "The order cannot be taken",
       "A valid order the shop cannot take: unknown or inactive SKUs, a SKU on two lines, "
       "two currencies, more units than the channel allows, a store that offers no pick-up, "
       "a redemption for another member, a partner rule; `errors` names each line."),
    _t("member-not-found", 422, "No loyalty member for this customer",
       "The order names a loyalty member that does not exist or is not the customer's; "
       "nothing was taken."),
    _t("idempotency-key-reused", 422, "Idempotency-Key reused with another request",
       "This Idempotency-Key was used with a different body; use a new key for a new request."),
    _t("insufficient-points", 422, "Insufficient points",
       "The member has fewer available points than asked (`requested`, `available`)."),
    _t("invalid-posting", 422, "Invalid posting",
       "The posting names SKUs or locations the ERP does not know, or its amounts do not add "
       "up."),
    _t("unknown-partner", 422, "Unknown partner", "Register the partner before minting its keys."),
    _t("rate-limited", 429, "Too many requests",
       "The plan's burst, minute or day is used up; `Retry-After` says when to try again, "
       "`RateLimit` how much is left."),
    _t("too-many-in-flight", 429, "Too many requests in flight",
       "The consumer has too many requests open at once through the gateway."),
    _t("erp-rate-limited", 429, "ERP rate limit exceeded",
       "The ERP's own request budget is used up; retry after `Retry-After`."),
    _t("headers-too-large", 431, "Request headers too large",
       "The request's headers are larger than the gateway takes."),
    # ours, not the request's
    _t("internal", 500, "Internal error",
       "A failure of ours; the `request_id` finds it in the logs."),
    _t("bad-gateway", 502, "Bad gateway", "The service behind the API failed or could not be "
       "reached."),
    _t("unavailable", 503, "Service unavailable",
       "The service cannot answer now; retry after `Retry-After`."),
    _t("not-ready", 503, "Not ready", "The service is starting or draining."),
    _t("circuit-open", 503, "Upstream unavailable",
       "The gateway stopped calling a failing service for a while (an open breaker)."),
    _t("overloaded", 503, "Upstream overloaded",
       "The service sheds load; retry after `Retry-After`."),
    _t("limits-unavailable", 503, "Rate limits unavailable",
       "The gateway cannot count the plan's use (its store is down) and does not pass "
       "unmetered traffic."),
    _t("store-unavailable", 503, "Storage unavailable",
       "The service's database does not answer; nothing was changed."),
    _t("catalogue-unavailable", 503, "Catalogue unavailable",
       "The shop's copy of the catalogue is not loaded yet."),
    _t("checkout-busy", 503, "Too many checkouts at once",
       "Checkouts are shed beyond capacity; retry after `Retry-After`."),
    _t("downstream-unavailable", 503, "A service behind this API is unavailable",
       "A service this API composes does not answer."),
    _t("erp-unavailable", 503, "ERP unavailable", "The ERP does not answer."),
    _t("order-in-progress", 503, "The order is still being processed",
       "A step's service does not answer yet; the order is finished in the background: retry "
       "with the same Idempotency-Key."),
    _t("positions-unavailable", 503, "Stock positions unavailable",
       "The ERP is down and no stock figure is fresh enough to answer."),
    _t("stock-unavailable", 503, "Stock unavailable",
       "Stock figures cannot be read now."),
    _t("stores-unavailable", 503, "Store list unavailable",
       "The list of stores is not loaded yet."),
    _t("upstream-timeout", 504, "Upstream timed out",
       "The service behind the API did not answer in time."),
)  # fmt: skip

_BY_SLUG = {t.slug: t for t in CATALOGUE}


def by_slug(slug: str) -> ProblemType | None:
    return _BY_SLUG.get(slug)
