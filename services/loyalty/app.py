"""Loyalty system API: members, a points ledger, two-phase redemption for orders."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from litestar import Controller, Litestar, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, SkipValidation

from contracts.events import POS_STREAM
from contracts.models import (
    MAX_LEDGER_ENTRIES,
    POSTING_ID_PATTERN,
    Adjustment,
    Earning,
    ExpiryRun,
    HoldRequest,
    Ledger,
    LoyaltyAccount,
    MemberEmail,
    MemberIn,
    MemberLookup,
    MemberProfile,
    PointsBooked,
    PointsHold,
    Reversal,
)
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.errors import problem_responses
from services.kit.identity import Identity, require_scope
from services.kit.periodic import Periodic
from services.kit.registry import Registry
from services.kit.settings import Settings
from services.loyalty.events import accrue
from services.loyalty.logic import LoyaltyService
from services.loyalty.rules import load_rules
from services.loyalty.seed import seed_loyalty
from services.loyalty.store import LoyaltyTables
from services.loyalty.vault import EmailVault
from services.pos.events import POS_DECODER

__all__ = ["LoyaltySettings", "create_app", "create_app_from_env"]

Loyalty = SkipValidation[LoyaltyService]
Caller = SkipValidation[Identity]
MemberParam = Annotated[str, PathParameter(pattern=r"^[A-Za-z0-9-]{1,40}\Z")]
HoldParam = Annotated[str, PathParameter(pattern=POSTING_ID_PATTERN)]


class LoyaltySettings(Settings, frozen=True, kw_only=True):
    loyalty_rules: str = "deploy/config/loyalty.toml"
    #: how often inactive members' points are expired (when the rules say they expire)
    loyalty_expiry_interval_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86_400)] = 3600.0


class ExpiryController(Controller):
    path = "/expiries"
    tags = ["members"]

    @post(
        "/",
        status_code=200,
        summary="Expire inactive members' points now (operators; it also runs on its own)",
        responses=problem_responses(401, 403),
    )
    async def run(self, loyalty: Loyalty, identity: Caller) -> ExpiryRun:
        require_scope(identity, "loyalty:admin")
        return await loyalty.expire_inactive()


class MembersController(Controller):
    path = "/members"
    tags = ["members"]

    @post("/", summary="Enrol a member", responses=problem_responses(401, 403, 409))
    async def enrol(
        self, loyalty: Loyalty, identity: Caller, data: JSONBody[MemberIn]
    ) -> LoyaltyAccount:
        require_scope(identity, "loyalty:admin")
        return await loyalty.enrol(data)

    @post(
        "/lookup",
        status_code=200,
        summary="Find a member by card number or email (stored hashed)",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def lookup(
        self, loyalty: Loyalty, identity: Caller, data: JSONBody[MemberLookup]
    ) -> LoyaltyAccount:
        require_scope(identity, "loyalty:lookup")
        if data.customer_sub:
            require_scope(identity, "loyalty:admin")  # a till finds members by card or email
        return await loyalty.lookup(data)

    @get(
        "/{member_id:str}/profile",
        summary="A member as customer service sees it: whose, the email masked (operators)",
        responses=problem_responses(401, 403, 404),
    )
    async def profile(
        self, loyalty: Loyalty, identity: Caller, member_id: MemberParam
    ) -> MemberProfile:
        require_scope(identity, "loyalty:admin")
        return await loyalty.profile(member_id)

    @get(
        "/{member_id:str}/email",
        summary="A member's whole email address (operators; customer service records asking)",
        responses=problem_responses(401, 403, 404),
    )
    async def email(
        self, loyalty: Loyalty, identity: Caller, member_id: MemberParam
    ) -> MemberEmail:
        require_scope(identity, "loyalty:admin")
        return await loyalty.email(member_id)

    @get(
        "/{member_id:str}",
        summary="An account: a customer sees only their own",
        responses=problem_responses(401, 404),
    )
    async def account(
        self, loyalty: Loyalty, identity: Caller, member_id: MemberParam
    ) -> LoyaltyAccount:
        return await loyalty.account(member_id, identity)

    @get(
        "/{member_id:str}/ledger",
        summary="The account's entries",
        description=f"The newest {MAX_LEDGER_ENTRIES:,} entries, oldest first; the account's "
        "balance counts every entry.",
        responses=problem_responses(401, 404),
    )
    async def ledger(self, loyalty: Loyalty, identity: Caller, member_id: MemberParam) -> Ledger:
        return await loyalty.ledger(member_id, identity)

    @post(
        "/{member_id:str}/holds",
        status_code=201,
        summary="Hold points for an order (never below zero)",
        responses=problem_responses(401, 404, 409, 422),
    )
    async def hold(
        self,
        loyalty: Loyalty,
        identity: Caller,
        member_id: MemberParam,
        data: JSONBody[HoldRequest],
    ) -> Response[PointsHold]:
        hold, created = await loyalty.hold(member_id, data, identity)
        return Response(
            hold, status_code=201, headers={"Idempotent-Replayed": str(not created).lower()}
        )

    @post(
        "/{member_id:str}/earnings",
        status_code=200,
        summary="Points for an online purchase, by tier (idempotent by source_id)",
        responses=problem_responses(401, 403, 404),
    )
    async def earn(
        self,
        loyalty: Loyalty,
        identity: Caller,
        member_id: MemberParam,
        data: JSONBody[Earning],
    ) -> PointsBooked:
        require_scope(identity, "loyalty:accrue")
        await loyalty.account(member_id, None)  # 404 for an unknown member
        points = await loyalty.earn(member_id, data.source_id, data.amount)
        return PointsBooked(member_id=member_id, points=points)

    @post(
        "/{member_id:str}/reversals",
        status_code=200,
        summary="Take back what a returned part earned, pro rata (idempotent by source_id)",
        responses=problem_responses(401, 403, 404),
    )
    async def reverse(
        self,
        loyalty: Loyalty,
        identity: Caller,
        member_id: MemberParam,
        data: JSONBody[Reversal],
    ) -> PointsBooked:
        require_scope(identity, "loyalty:accrue")
        await loyalty.account(member_id, None)
        points = await loyalty.reverse(
            member_id, data.source_id, data.original_source_id, data.amount
        )
        return PointsBooked(member_id=member_id, points=-points)

    @post(
        "/{member_id:str}/adjustments",
        status_code=200,
        summary="An operator's correction (idempotent by source_id)",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def adjust(
        self,
        loyalty: Loyalty,
        identity: Caller,
        member_id: MemberParam,
        data: JSONBody[Adjustment],
    ) -> LoyaltyAccount:
        require_scope(identity, "loyalty:admin")
        by = f"{identity.kind}:{identity.sub or identity.consumer}"
        return await loyalty.adjust(member_id, data, by)


class AccountsController(Controller):
    path = "/accounts"
    tags = ["members"]

    @get(
        "/mine",
        summary="The signed-in customer's own account (by their JWT subject)",
        responses=problem_responses(401, 404),
    )
    async def mine(self, loyalty: Loyalty, identity: Caller) -> LoyaltyAccount:
        return await loyalty.of_customer(identity)


class HoldsController(Controller):
    path = "/holds"
    tags = ["holds"]

    @post(
        "/{hold_id:str}/capture",
        status_code=200,
        summary="Redeem held points (idempotent)",
        responses=problem_responses(401, 404, 409),
    )
    async def capture(self, loyalty: Loyalty, identity: Caller, hold_id: HoldParam) -> PointsHold:
        return await loyalty.settle(hold_id, "capture", identity)

    @post(
        "/{hold_id:str}/release",
        status_code=200,
        summary="Give held points back (idempotent)",
        responses=problem_responses(401, 404, 409),
    )
    async def release(self, loyalty: Loyalty, identity: Caller, hold_id: HoldParam) -> PointsHold:
        return await loyalty.settle(hold_id, "release", identity)


def create_app(
    settings: LoyaltySettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("loyalty", settings, registry)
    tables = LoyaltyTables(runtime.metadata)
    rules = load_rules(settings.loyalty_rules)
    holder: dict[str, LoyaltyService] = {}

    async def start(rt: Runtime) -> None:
        assert rt.db is not None and rt.bus is not None
        # lookups hash card numbers and emails with a key derived from the mesh secret
        key = hashlib.sha256(b"loyalty-lookup:" + settings.identity_key()).digest()
        loyalty = LoyaltyService(rt.db, tables, rules, key, EmailVault(settings.identity_key()))
        holder["loyalty"] = loyalty
        if settings.seed and settings.demo:
            await seed_loyalty(loyalty)

        async def on_pos_event(envelope: Any) -> None:
            await accrue(loyalty, envelope)

        rt.add_worker(rt.bus.consumer(POS_STREAM, "loyalty", on_pos_event, POS_DECODER))
        if rules.expire_after_inactive_days is not None:
            rt.add_worker(
                Periodic(
                    "points expiry",
                    settings.loyalty_expiry_interval_s,
                    loyalty.expire_inactive,
                    delay_first=True,
                )
            )

    def provide() -> LoyaltyService:
        return holder["loyalty"]

    app = create_service_app(
        "loyalty",
        settings,
        title="retailmesh loyalty system API",
        description="Members, an append-only points ledger, and holds for redemptions.",
        route_handlers=[MembersController, AccountsController, HoldsController, ExpiryController],
        runtime=runtime,
        dependencies={"loyalty": Provide(provide, sync_to_thread=False)},
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(LoyaltySettings, create_app)
