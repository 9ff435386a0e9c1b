"""POS system API: till transactions in batches, exactly once; lookups; sequence gaps."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.params import JSONBody, PathParameter, QueryParameter, SkipValidation

from contracts.events import POS_STREAM
from contracts.models import (
    DAY_CURSOR_PATTERN,
    LOCATION_PATTERN,
    MAX_DAY_TRANSACTIONS,
    MAX_GAPS,
    POSTING_ID_PATTERN,
    BatchResult,
    DayClose,
    PostingId,
    RecordedTransaction,
    ReturnClaim,
    StoreGaps,
    TransactionBatch,
    TransactionPage,
)
from contracts.postings import MAX_BATCH_POSTINGS
from services.kit.app import Runtime, app_from_env, create_service_app
from services.kit.catalogue import Catalogue
from services.kit.coalesce import Coalescer
from services.kit.erp_postings import ErpPostings
from services.kit.errors import problem_responses
from services.kit.identity import Identity
from services.kit.periodic import Periodic
from services.kit.registry import Registry
from services.kit.requestid import request_id
from services.kit.settings import Settings
from services.pos.claims import ReturnClaims
from services.pos.events import POS_DECODER, ErpPoster, PostingSweep
from services.pos.intake import IntakeRules
from services.pos.logic import PosService
from services.pos.store import PosTables

__all__ = ["PosSettings", "create_app", "create_app_from_env"]

Pos = SkipValidation[PosService]
Caller = SkipValidation[Identity]
Claims = SkipValidation[ReturnClaims]
StoreParam = Annotated[str, PathParameter(pattern=LOCATION_PATTERN)]
TransactionParam = Annotated[
    str,
    PathParameter(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
    ),
]


#: who the POS is to the ERP when it books its postings: allowed to post, nothing else
POSTER = Identity(kind="service", consumer="pos", scopes=frozenset({"erp:post"}))


class ClaimReleased(msgspec.Struct, frozen=True, kw_only=True):
    """The claim whose units are given back."""

    released: PostingId


class PosSettings(Settings, frozen=True, kw_only=True):
    #: how sales reach the ERP: a posting per transaction, or per store day summary
    #: (`POST /stores/{store_id}/days/{day}/close`, at the end of the store's day)
    pos_erp_posting: Literal["transaction", "daily_summary"] = "transaction"
    #: a batch of 500 transactions is about 1.4 MB: room for it (the gateway's route allows
    #: the same 4 MiB; tests/test_body_limits.py keeps the two in step)
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    #: the stores' currency (ISO 4217): a till transaction in another is refused at intake
    pos_currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")] = "EUR"
    #: how far a till's clock may run ahead of the POS's before its transactions are refused
    pos_clock_skew_s: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 300.0
    #: a transaction the ERP has not booked this long after it came in is posted again by
    #: the sweep (its event lost with Redis's data); the sweep looks every `pos_sweep_s`
    pos_booking_overdue_s: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 600.0
    pos_sweep_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0


class TransactionsController(Controller):
    path = "/transactions"
    tags = ["transactions"]

    @post(
        "/batches",
        status_code=200,
        summary="Upload up to 500 till transactions; each is stored once",
        description="Answers per transaction: accepted, duplicate (same id, same content) "
        "or rejected (with the reason). A batch that is not valid as a whole stores nothing.",
        responses=problem_responses(401, 403),
    )
    async def upload(
        self,
        pos: Pos,
        identity: Caller,
        request: Request[Any, Any, Any],
        data: JSONBody[TransactionBatch],
    ) -> BatchResult:
        return await pos.ingest(data, identity, request_id(request.scope))

    @get(
        "/{transaction_id:str}",
        summary="One transaction (a receipt, for returns)",
        responses=problem_responses(401, 403, 404),
    )
    async def one(
        self, pos: Pos, identity: Caller, transaction_id: TransactionParam
    ) -> RecordedTransaction:
        return await pos.get(transaction_id, identity)

    @get(
        "/{transaction_id:str}/returns",
        summary="The returns rung up at tills against a sale",
        responses=problem_responses(401, 403, 404),
    )
    async def returns(
        self, pos: Pos, identity: Caller, transaction_id: TransactionParam
    ) -> TransactionPage:
        return TransactionPage(items=await pos.returns_of(transaction_id, identity))

    @post(
        "/{transaction_id:str}/claims",
        status_code=201,
        summary="Take units of a sale back outside the tills (a return by receipt)",
        description="""
            For the services of the mesh (the orders service's returns by receipt): the
            units are counted with the tills' returns under the sale's lock, so the two
            together never take back more than was sold. Idempotent by `claim_id` (200 for
            a replay); 409 `claim-refused` with a `code` (too-many-units, not-on-sale, ...)
            when the sale has not that much left.
        """,
        responses=problem_responses(401, 403, 404, 409),
    )
    async def claim(
        self,
        claims: Claims,
        identity: Caller,
        transaction_id: TransactionParam,
        data: JSONBody[ReturnClaim],
    ) -> Response[ReturnClaim]:
        taken = await claims.claim(transaction_id, data, identity)
        return Response(data, status_code=201 if taken else 200)

    @post(
        "/{transaction_id:str}/claims/{claim_id:str}/release",
        status_code=200,
        summary="Give a claim's units back (its return did not happen); idempotent",
        responses=problem_responses(401, 403),
    )
    async def release_claim(
        self,
        claims: Claims,
        identity: Caller,
        transaction_id: TransactionParam,
        claim_id: Annotated[str, PathParameter(pattern=POSTING_ID_PATTERN)],
    ) -> ClaimReleased:
        await claims.release(transaction_id, claim_id, identity)
        return ClaimReleased(released=claim_id)


class StoresController(Controller):
    path = "/stores"
    tags = ["stores"]

    @get(
        "/{store_id:str}/transactions",
        description="By till and sequence, a page at a time: pass `next_cursor` back as "
        "`cursor` for the next.",
        summary="A store's transactions of one day (UTC)",
        responses=problem_responses(401, 403),
    )
    async def by_day(
        self,
        pos: Pos,
        identity: Caller,
        store_id: StoreParam,
        day: Annotated[date, QueryParameter(description="YYYY-MM-DD")],
        cursor: Annotated[
            str | None,
            QueryParameter(pattern=DAY_CURSOR_PATTERN, description="next_cursor of the last page"),
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=MAX_DAY_TRANSACTIONS, description="Page size")
        ] = MAX_DAY_TRANSACTIONS,
    ) -> TransactionPage:
        midnight = datetime.combine(day, time())
        return await pos.by_day(store_id, midnight, identity, cursor, limit)

    @post(
        "/{store_id:str}/days/{day:date}/close",
        status_code=200,
        summary="Close a store's day: summarize its transactions for the ERP (summary mode)",
        description="Idempotent: transactions are summarized once; closing again picks up "
        "those that arrived since (a till that synced late). 409 when this POS posts per "
        "transaction.",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def close_day(
        self,
        pos: Pos,
        identity: Caller,
        request: Request[Any, Any, Any],
        store_id: StoreParam,
        day: Annotated[date, PathParameter(description="YYYY-MM-DD")],
    ) -> DayClose:
        return await pos.close_day(store_id, day, identity, request_id(request.scope))

    @get(
        "/{store_id:str}/gaps",
        summary="Sequence numbers the store's tills have not sent yet",
        description=f"Up to {MAX_GAPS:,} gaps, by till and sequence: once the tills send what "
        "they miss, the next gaps show.",
        responses=problem_responses(401, 403),
    )
    async def gaps(self, pos: Pos, identity: Caller, store_id: StoreParam) -> StoreGaps:
        return StoreGaps(store_id=store_id, gaps=await pos.gaps(store_id, identity))


def create_app(
    settings: PosSettings, *, registry: Registry | None = None, bus: Any = None
) -> Litestar:
    runtime = Runtime("pos", settings, registry)
    tables = PosTables(runtime.metadata)
    holder: dict[str, PosService] = {}
    claims_holder: dict[str, ReturnClaims] = {}

    async def start(rt: Runtime) -> None:
        assert rt.db is not None and rt.bus is not None
        holder["pos"] = PosService(
            rt.db,
            tables,
            rt.outbox,
            settings.pos_erp_posting,
            IntakeRules(currency=settings.pos_currency, clock_skew_s=settings.pos_clock_skew_s),
            Catalogue(rt.client("erp")),
        )
        claims_holder["claims"] = ReturnClaims(rt.db, tables)
        per_transaction = settings.pos_erp_posting == "transaction"

        async def record(outcomes: list[tuple[str, str]]) -> list[None]:
            assert rt.db is not None
            async with rt.db.write() as conn:
                await tables.record_outcomes(conn, outcomes)
            return [None] * len(outcomes)

        outcomes = Coalescer(record, max_batch=MAX_BATCH_POSTINGS)

        async def outcome(transaction_id: str, said: str) -> None:
            await outcomes.submit((transaction_id, said))

        postings = ErpPostings(rt.registry.client("erp"), rt.identity, POSTER)
        poster = ErpPoster(postings, settings.pos_erp_posting, outcome if per_transaction else None)
        # Postings are idempotent by transaction id and independent of each other: the
        # events of a read are handled at once, and their postings go to the ERP in one
        # batch call (and what it said to the database in one transaction).
        rt.add_worker(
            rt.bus.consumer(
                POS_STREAM,
                "pos-erp",
                poster,
                POS_DECODER,
                policy=settings.delivery_policy(
                    concurrency=MAX_BATCH_POSTINGS, batch=MAX_BATCH_POSTINGS
                ),
            )
        )
        if per_transaction:
            sweep = PostingSweep(rt.db, tables, poster, settings.pos_booking_overdue_s)
            rt.add_worker(Periodic("till posting sweep", settings.pos_sweep_s, sweep.run_once))

    def provide_pos() -> PosService:
        return holder["pos"]

    def provide_claims() -> ReturnClaims:
        return claims_holder["claims"]

    app = create_service_app(
        "pos",
        settings,
        title="retailmesh POS system API",
        description="Till transactions (sales and returns) synced from stores exactly once.",
        route_handlers=[TransactionsController, StoresController],
        runtime=runtime,
        dependencies={
            "pos": Provide(provide_pos, sync_to_thread=False),
            "claims": Provide(provide_claims, sync_to_thread=False),
        },
        on_start=[start],
        bus=bus,
    )
    app.state.runtime = runtime
    app.state.holder = holder
    return app


def create_app_from_env() -> Litestar:
    return app_from_env(PosSettings, create_app)
