"""Where a shopper is: the stores nearest a store or a postcode."""

from __future__ import annotations

from contracts.models import StockLocation
from services.erp.seed import STORES
from services.kit.places import distance_km, nearest_stores, store_for_postcode

PLACED = [
    StockLocation(
        id=i, name=n, kind="store", region=r, country=c, postcode=p, latitude=la, longitude=lo
    )
    for i, n, r, c, p, la, lo in STORES
]
BY_ID = {s.id: s for s in PLACED}


def test_distances_are_great_circle_kilometres() -> None:
    # Amsterdam Centraal to Rotterdam Lijnbaan: about 57 km as the crow flies
    assert 55 < distance_km(BY_ID["STORE-001"], BY_ID["STORE-002"]) < 60
    assert distance_km(BY_ID["STORE-007"], BY_ID["STORE-007"]) == 0


def test_the_nearest_stores_start_with_the_one_asked_for() -> None:
    near = nearest_stores(PLACED, BY_ID["STORE-006"], 3)  # Antwerp
    assert [s.id for s, _ in near] == ["STORE-006", "STORE-007", "STORE-008"]
    assert [km for _, km in near] == sorted(km for _, km in near)
    assert len(nearest_stores(PLACED, BY_ID["STORE-006"], 50)) == len(PLACED)


def test_a_postcode_finds_the_store_of_its_area_in_its_country() -> None:
    assert store_for_postcode(PLACED, "3512 JE", "NL").id == "STORE-003"  # type: ignore[union-attr]
    assert store_for_postcode(PLACED, "1000", "BE").id == "STORE-007"  # type: ignore[union-attr]
    assert store_for_postcode(PLACED, "1000", "NL").id == "STORE-001"  # type: ignore[union-attr]
    assert store_for_postcode(PLACED, "50999", "DE").id == "STORE-009"  # type: ignore[union-attr]
    # no shared start: the numerically closest area of the country
    assert store_for_postcode(PLACED, "6000", "NL").id == "STORE-004"  # type: ignore[union-attr]
    assert store_for_postcode(PLACED, "1000", "FR") is None


def test_unplaced_locations_are_never_offered_for_pick_up() -> None:
    dc = StockLocation(id="DC-NORTH", name="DC", kind="dc", region="nl-north")
    assert nearest_stores([*PLACED, dc], dc, 3) == []
    assert all(s.id != "DC-NORTH" for s, _ in nearest_stores([*PLACED, dc], BY_ID["STORE-001"], 20))
