"""Reservations cannot oversell, expire on their own, and settle idempotently."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import dev_issuer
from tests.services.inventory.conftest import Mesh

SKU = "SKU-000042"


def reservation(n: int | str, **kw: Any) -> dict[str, Any]:
    body = {
        "reservation_id": f"o-{n}:1",
        "sku": SKU,
        "quantity": 1,
        "owner": f"o-{n}",
        "location_id": "DC-NORTH",
    }
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}  # None: leave the field out


async def ats(mesh: Mesh, channel: str = "web") -> dict[str, Any]:
    r = await mesh.inventory.get(f"/availability/{SKU}", params={"channel": channel})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def north(mesh: Mesh) -> int:
    return next(
        loc["ats"] for loc in (await ats(mesh))["locations"] if loc["location_id"] == "DC-NORTH"
    )


async def test_1000_concurrent_reservations_for_100_units_admit_exactly_100(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 100)
    assert await north(mesh) == 100
    results = await asyncio.gather(
        *(mesh.inventory.post("/reservations", json=reservation(n, ttl_s=2)) for n in range(1000))
    )
    statuses = [r.status_code for r in results]
    assert statuses.count(201) == 100
    assert statuses.count(409) == 900
    refused = next(r for r in results if r.status_code == 409).json()
    assert refused["type"].endswith("/insufficient-stock") and refused["shortfall"] == 1
    assert await north(mesh) == 0
    # the held units come back when the reservations expire, with no sweeper running
    await asyncio.sleep(2.1)
    assert await north(mesh) == 100
    held = results[statuses.index(201)].json()
    assert (await mesh.inventory.get(f"/reservations/{held['reservation_id']}")).json()[
        "status"
    ] == "expired"


async def test_confirm_keeps_release_returns_and_both_are_idempotent(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 10)
    r = await mesh.inventory.post("/reservations", json=reservation("a", quantity=4, ttl_s=1))
    assert r.status_code == 201 and r.json()["status"] == "held"
    rid = r.json()["reservation_id"]
    for _ in range(2):
        confirmed = await mesh.inventory.post(f"/reservations/{rid}/confirm")
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    await asyncio.sleep(1.1)
    assert await north(mesh) == 6  # confirmed: it does not expire
    for _ in range(2):
        released = await mesh.inventory.post(f"/reservations/{rid}/release")
        assert released.status_code == 200 and released.json()["status"] == "released"
    assert await north(mesh) == 10
    again = await mesh.inventory.post(f"/reservations/{rid}/confirm")
    assert again.status_code == 409


async def test_reservation_ids_are_idempotent(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 10)
    first = await mesh.inventory.post("/reservations", json=reservation("b", quantity=3))
    replay = await mesh.inventory.post("/reservations", json=reservation("b", quantity=3))
    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert first.json()["reservation_id"] == replay.json()["reservation_id"]
    assert await north(mesh) == 7
    other = await mesh.inventory.post("/reservations", json=reservation("b", quantity=5))
    assert other.status_code == 409 and other.json()["type"].endswith("/reservation-conflict")


async def test_channel_reservation_takes_the_first_location_with_enough(mesh: Mesh) -> None:
    await mesh.set_on_hand(SKU, "DC-NORTH", 2)
    await mesh.set_on_hand(SKU, "DC-SOUTH", 50)
    r = await mesh.inventory.post(
        "/reservations",
        json=reservation("c", quantity=3, location_id=None, channel="web"),
    )
    assert r.status_code == 201 and r.json()["location_id"] == "DC-SOUTH"
    total = await ats(mesh)
    assert total["ats"] == 2 + 47


async def test_bad_reservations(mesh: Mesh) -> None:
    # channel and location_id: one of them, a rule the published schema states (oneOf)
    both = await mesh.inventory.post("/reservations", json=reservation("d", channel="web"))
    neither = await mesh.inventory.post("/reservations", json=reservation("d", location_id=None))
    null = await mesh.inventory.post("/reservations", json={**reservation("d"), "channel": None})
    for r in (both, neither, null):
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith("/validation")
    assert "exactly one of channel, location_id" in both.json()["detail"] + str(both.json())
    unknown = await mesh.inventory.post("/reservations", json=reservation("e", sku="SKU-999999"))
    assert unknown.status_code == 404
    nobody = await mesh.inventory.post("/reservations", json=reservation("f"), auth=None)
    assert nobody.status_code == 401


async def test_without_redis_the_in_process_store_keeps_the_same_promises(
    inventory_env: dict[str, str],
) -> None:
    from services.mesh import build_embedded
    from tests.conftest import Running

    env = {k: v for k, v in inventory_env.items() if k != "REDIS_URL"}
    env["REDIS_MODE"] = "off"
    async with Running(build_embedded(env)) as running:
        mesh = Mesh(running)
        try:
            await mesh.set_on_hand(SKU, "DC-NORTH", 100)
            results = await asyncio.gather(
                *(
                    mesh.inventory.post("/reservations", json=reservation(n, ttl_s=1))
                    for n in range(300)
                )
            )
            assert [r.status_code for r in results].count(201) == 100
            assert await north(mesh) == 0
            await asyncio.sleep(1.1)
            assert await north(mesh) == 100
            # and events still reach it, through the in-memory bus
            await mesh.set_on_hand(SKU, "DC-NORTH", 60)
            for _ in range(50):
                if await north(mesh) == 60:
                    break
                await asyncio.sleep(0.02)
            assert await north(mesh) == 60
        finally:
            await mesh.inventory.aclose()


async def test_reservations_survive_a_restart_of_the_service(
    mesh: Mesh, inventory_env: dict[str, str]
) -> None:
    from services.inventory.app import InventorySettings, create_app
    from services.kit.asgi import LifespanRunner

    await mesh.set_on_hand(SKU, "DC-NORTH", 20)
    held = reservation("r1", quantity=5)
    assert (await mesh.inventory.post("/reservations", json=held)).status_code == 201
    assert await north(mesh) == 15

    # a new inventory process (same Redis) sees the reservation as it was; after a loss of
    # Redis itself the orders service puts its orders' reservations back (tests/services/orders)
    fresh = create_app(
        InventorySettings.from_env(inventory_env), registry=mesh.running.app.registry
    )
    runner = LifespanRunner(fresh)
    await runner.start()
    try:
        ats = fresh.state.holder["ats"]
        entries = await ats.cache.entries([SKU])
        assert entries[SKU][0].reserved == {"DC-NORTH": 5}
    finally:
        await runner.stop()


async def test_a_reservation_belongs_to_the_partner_that_made_it(
    mesh: Mesh, inventory_env: dict[str, str]
) -> None:
    """Another partner can neither read nor release it (404, as if it did not exist); its
    maker and operators can. Before, any holder of inventory:reserve could release any."""
    await mesh.set_on_hand(SKU, "DC-NORTH", 10)
    gateway = mesh.running.client
    admin = {"Authorization": "Bearer " + dev_issuer(inventory_env).mint("ops", roles=["admin"])}
    keys = {}
    for partner in ("market-a", "market-b"):
        await gateway.post(
            "/admin/v1/partners", json={"id": partner, "name": partner}, headers=admin
        )
        created = await gateway.post(
            "/admin/v1/keys",
            json={"partner_id": partner, "scopes": ["inventory:reserve"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        keys[partner] = {"X-API-Key": created.json()["key"]}
    body = reservation("mkt-1")
    made = await gateway.post("/v1/inventory/reservations", json=body, headers=keys["market-a"])
    assert made.status_code == 201, made.text
    rid = body["reservation_id"]
    other = keys["market-b"]
    assert (
        await gateway.get(f"/v1/inventory/reservations/{rid}", headers=other)
    ).status_code == 404
    for action in ("release", "confirm"):
        r = await gateway.post(f"/v1/inventory/reservations/{rid}/{action}", headers=other)
        assert r.status_code == 404, r.text
    # the same id by another partner does not reach the first one's reservation either
    taken = await gateway.post("/v1/inventory/reservations", json=body, headers=other)
    assert taken.status_code == 409
    mine = await gateway.get(f"/v1/inventory/reservations/{rid}", headers=keys["market-a"])
    assert mine.status_code == 200 and mine.json()["status"] == "held"
    assert (
        await gateway.get(f"/v1/inventory/reservations/{rid}", headers=admin)
    ).status_code == 200
    released = await gateway.post(
        f"/v1/inventory/reservations/{rid}/release", headers=keys["market-a"]
    )
    assert released.status_code == 200 and released.json()["status"] == "released"
