"""What a request weighs in its plan's limits: a bulk route's items count one by one."""

from __future__ import annotations

from gateway.config import RouteConfig
from gateway.routes import weight_of

BULK = RouteConfig(path="/availability", methods=["GET"], weight_per="skus")


def test_a_bulk_read_weighs_one_per_item_it_names() -> None:
    assert weight_of(BULK, b"skus=A-1,B-2,C-3") == 3
    assert weight_of(BULK, b"skus=A-1&skus=B-2,C-3&other=x,y") == 3  # repeated, not others'
    assert weight_of(BULK, b"skus=A-1,,%20,B-2") == 2  # empty items are no items
    assert weight_of(BULK, b"") == 1  # at least the request itself
    assert weight_of(BULK, b"skus=" + b",".join(b"X%d" % n for n in range(5000))) == 1000
    heavy = RouteConfig(path="/a", methods=["GET"], weight=5, weight_per="skus")
    assert weight_of(heavy, b"skus=A-1,B-2") == 10
    assert weight_of(RouteConfig(path="/a", methods=["GET"], weight=7), b"skus=A,B") == 7
