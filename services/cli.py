"""`retailmesh`: the one command line of the project.

retailmesh run                 the embedded mesh on 127.0.0.1:8080 (PORT, HOST)
retailmesh run-mesh            each service its own process, the gateway in front
retailmesh seed [--reset]      load the demo data
retailmesh openapi [--check]   regenerate (or verify) the committed specs in openapi/
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

SPEC_DIR = Path("openapi")
#: the mesh mode's services, on consecutive ports after `--base-port` (8101, 8102, ...)
MESH_SERVICES = (
    "erp",
    "inventory",
    "pos",
    "loyalty",
    "orders",
    "web",
    "store",
    "partner",
    "care",
)


DEMO_PARTNER = "demo-partner"
#: least privilege: stock and its own orders, never the sales ledger
DEMO_SCOPES = ["erp:stock", "inventory:read", "partner:orders"]


_SHOPPER = "orders:write orders:read orders:return"
_ORDER = '{"lines": [{"sku": "SKU-000001", "quantity": 1}], "payment_reference": "psp-1"}'


def _banner(base: str, mode: str, demo_key: str) -> None:
    print(
        f"""
retailmesh ({mode}) serving on {base}
  API docs        {base}/docs   (OpenAPI: {base}/openapi.json)
  health          {base}/healthz, {base}/readyz
  demo partner    X-API-Key: {demo_key}   (development key, in .data/keys/)
  dev JWT         .venv/bin/retailmesh token --sub alice --scope "erp:stock erp:post"
  web shop        curl {base}/v2/web/products/SKU-000005?store=STORE-003
                  curl '{base}/v2/web/products?q=jacket&limit=5'
  as alice        (demo customer, member M-ALICE, past orders: one delivered, a pick-up at
                  STORE-002; bob is M-BOB; agents: any --sub with --scope care:read)
                  ALICE=$(.venv/bin/retailmesh token --sub alice --scope "{_SHOPPER}")
                  curl -H "Authorization: Bearer $ALICE" {base}/v2/web/loyalty
                  curl -H "Authorization: Bearer $ALICE" -H 'Idempotency-Key: "try-1"' \\
                       -H 'content-type: application/json' -X POST {base}/v2/web/checkout \\
                       -d '{_ORDER}'
                  curl -H "Authorization: Bearer $ALICE" {base}/v2/web/orders
  as a partner    curl -H 'X-API-Key: {demo_key}' \\
                       '{base}/v1/partner/availability?skus=SKU-000001,SKU-000002'
  as an agent     AGENT=$(.venv/bin/retailmesh token --sub agent-ann --scope "care:read")
                  curl -H "Authorization: Bearer $AGENT" \\
                       '{base}/v1/care/customers/alice?reason=call%201'
  as an operator  TOKEN=$(.venv/bin/retailmesh token --sub ops --role admin)
                  curl -H "Authorization: Bearer $TOKEN" {base}/v1/erp/postings
""",
        flush=True,
    )


def _gateway_parts() -> tuple[Any, Any, Any]:
    """The gateway's settings, config and key store, with its database (nothing served)."""
    from gateway.app import GatewaySettings
    from gateway.auth.keys import KeyStore
    from gateway.config import load_config
    from services.kit.app import Runtime

    settings = GatewaySettings.from_env(os.environ)
    config = load_config(settings.gateway_config)
    runtime = Runtime("gateway", settings, None)
    store = KeyStore(runtime.metadata, settings.pepper())
    return settings, config, (runtime, store)


async def _with_key_store(fn: Any) -> Any:
    from services.kit.storage import Database

    settings, config, (runtime, store) = _gateway_parts()
    db = Database(settings.database_url_for("gateway"))
    try:
        await db.create_all(runtime.metadata)
        return await fn(settings, config, store, db)
    finally:
        await db.dispose()


def prepare_first_run() -> str:
    """Development keys, demo data and the demo partner's key; returns that key."""
    from services.kit.devkeys import load_dev_keys

    data_dir = Path(os.environ.get("DATA_DIR", ".data"))
    load_dev_keys(data_dir)
    key_file = data_dir / "keys" / "demo-partner.key"
    if key_file.exists():
        return key_file.read_text().strip()

    async def create(settings: Any, config: Any, store: Any, db: Any) -> str:
        await store.ensure_partner(db, DEMO_PARTNER, "Demo partner")
        new = await store.create(
            db, partner_id=DEMO_PARTNER, scopes=DEMO_SCOPES, plan="partner", label="demo"
        )
        return str(new.key)

    key: str = asyncio.run(_with_key_store(create))
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def _serve(target: str, host: str, port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        target,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        log_access=False,
    ).serve()


def cmd_run(args: argparse.Namespace) -> int:
    Path(os.environ.get("DATA_DIR", ".data")).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DEMO", "true")  # the demo customers and their points
    demo_key = prepare_first_run()
    _banner(f"http://{args.host}:{args.port}", "embedded: one process", demo_key)
    _serve("services.mesh:embedded_from_env", args.host, args.port)
    return 0


def cmd_run_mesh(args: argparse.Namespace) -> int:
    """Start every service as its own process, then the gateway, and keep them running
    (a process that dies is started again) until interrupted."""
    from services.processes import Child, ProcessSupervisor

    Path(os.environ.get("DATA_DIR", ".data")).mkdir(parents=True, exist_ok=True)
    demo_key = prepare_first_run()
    env = dict(os.environ)
    env.setdefault("REDIS_MODE", "required")
    env.setdefault("DEMO", "true")
    ports = {name: args.base_port + n for n, name in enumerate(MESH_SERVICES, start=1)}
    urls = [f"{name}=http://{args.host}:{port}" for name, port in ports.items()]
    env["SERVICE_URLS"] = ",".join(urls)  # every service finds every other by name
    children = [
        Child(name, _granian(f"services.{name}.app:create_app_from_env", args.host, port), env)
        for name, port in ports.items()
    ]
    children.append(
        Child("gateway", _granian("services.mesh:gateway_from_env", args.host, args.port), env)
    )
    supervisor = ProcessSupervisor(children)
    # SIGTERM (a process manager stopping us) takes the same path as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        supervisor.start_all()
        _banner(
            f"http://{args.host}:{args.port}", "mesh: " + ", ".join(urls) + ", gateway", demo_key
        )
        supervisor.run_until_interrupted()
    except KeyboardInterrupt:
        return 0
    finally:
        supervisor.stop_all()
    return 0


def _granian(target: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        target,
    ]


def cmd_seed(args: argparse.Namespace) -> int:
    from services.erp.app import ErpSettings
    from services.erp.seed import seed_erp
    from services.erp.store import ErpTables
    from services.kit.app import Runtime

    async def go() -> bool:
        settings = ErpSettings.from_env(os.environ)
        runtime = Runtime("erp", settings, None)
        tables = ErpTables(runtime.metadata)
        from services.kit.storage import Database

        db = Database(settings.database_url_for("erp"))
        try:
            await db.create_all(runtime.metadata)
            return await seed_erp(db, tables, reset=args.reset)
        finally:
            await db.dispose()

    loaded = asyncio.run(go())
    print("erp: demo data loaded" if loaded else "erp: data present; --reset to reload")
    return 0


def generated_specs() -> dict[str, str]:
    """file name → committed text of every spec, as the code generates them now."""
    from contracts.asyncapi import asyncapi_document
    from gateway.spec import dumps
    from services.mesh import build_embedded, gateway_spec, service_specs

    env = {"SEED": "false", "REDIS_MODE": "off"}
    out = {f"{name}.json": dumps(spec) for name, spec in service_specs().items()}
    gateway = build_embedded(env)
    out["asyncapi.json"] = dumps(asyncapi_document())
    out["gateway.json"] = dumps(gateway_spec(gateway.settings, gateway.own_spec()))
    return out


def cmd_openapi(args: argparse.Namespace) -> int:
    specs = generated_specs()
    out = Path(args.out)
    if args.check:
        stale = [
            n
            for n, text in specs.items()
            if not (out / n).exists() or (out / n).read_text() != text
        ]
        if stale:
            print(
                f"OpenAPI specs out of date: {', '.join(stale)}; run `retailmesh openapi`",
                file=sys.stderr,
            )
            return 1
        print("OpenAPI specs up to date")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in specs.items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.app import GatewaySettings
    from gateway.config import load_config

    settings = GatewaySettings.from_env(os.environ)
    issuer = settings.dev_issuer(load_config(settings.gateway_config))
    scopes = [s for item in args.scope for s in item.split()]
    print(
        issuer.mint(
            args.sub,
            scopes=scopes,
            store_id=args.store_id,
            roles=args.role or None,
            ttl_s=args.ttl,
        )
    )
    return 0


def _print_key(record: Any) -> None:
    expires = record.expires_at.isoformat() if record.expires_at else "never"
    grace = f" grace-until={record.grace_until.isoformat()}" if record.grace_until else ""
    print(
        f"{record.id}  {record.prefix}...  partner={record.partner_id}  plan={record.plan}  "
        f"scopes={','.join(record.scopes) or '-'}  status={record.status}  "
        f"expires={expires}{grace}"
    )


def cmd_partners(args: argparse.Namespace) -> int:
    from gateway.auth.keys import list_partners

    async def run(settings: Any, config: Any, store: Any, db: Any) -> int:
        if args.action == "add":
            if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", args.partner_id):
                print("a partner id is lowercase letters, digits and '-'", file=sys.stderr)
                return 2
            await store.ensure_partner(db, args.partner_id, args.name)
        for partner in await list_partners(store, db):
            print(f"{partner.id}  {partner.name}  since {partner.created_at.isoformat()}")
        return 0

    return int(asyncio.run(_with_key_store(run)))


def cmd_keys(args: argparse.Namespace) -> int:
    from datetime import timedelta

    async def run(settings: Any, config: Any, store: Any, db: Any) -> int:
        from gateway.auth.keycache import KeyCache
        from gateway.auth.keys import KeyRefused
        from services.kit.redisconn import connect_redis

        if args.action == "create":
            scopes = [s for item in args.scope for s in item.replace(",", " ").split()]
            _, problem = config.key_scope_problem(args.plan, scopes)
            if problem is not None:
                print(problem, file=sys.stderr)
                return 2
            try:
                new = await store.create(
                    db,
                    partner_id=args.partner,
                    scopes=scopes,
                    plan=args.plan,
                    label=args.label,
                    expires_in=timedelta(days=args.expires_days) if args.expires_days else None,
                    env=args.env,
                )
            except KeyRefused as exc:
                print(exc, file=sys.stderr)
                return 2
            _print_key(new.record)
            print(f"key (shown once, store it now): {new.key}")
            return 0
        if args.action == "list":
            for record in await store.list(db, args.partner):
                _print_key(record)
            return 0
        redis = await connect_redis(settings)
        cache = KeyCache(store, db, redis, settings.key_prefix() + "gateway.keys.invalidate")
        try:
            if args.action == "revoke":
                digest = await store.revoke(db, args.key_id)
                if digest is None:
                    print(f"no key {args.key_id}", file=sys.stderr)
                    return 1
                await cache.announce(digest)
                print(f"revoked {args.key_id}")
                return 0
            rotated = await store.rotate(db, args.key_id, timedelta(hours=args.grace_hours))
            if rotated is None:
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            new, old_digest = rotated
            await cache.announce(old_digest)
            _print_key(new.record)
            print(f"key (shown once, store it now): {new.key}")
            print(f"{args.key_id} keeps working for {args.grace_hours:g} h")
            return 0
        finally:
            if redis is not None:
                await redis.aclose()

    return int(asyncio.run(_with_key_store(run)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retailmesh", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "serve the embedded mesh"),
        ("run-mesh", "serve one process per service"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
        if name == "run-mesh":
            base = int(os.environ.get("MESH_BASE_PORT", "8100"))
            p.add_argument("--base-port", type=int, default=base, help="services on the next ports")
    p = sub.add_parser("seed", help="load the demo data")
    p.add_argument("--reset", action="store_true", help="replace existing data")
    p = sub.add_parser("openapi", help="regenerate the committed OpenAPI specs")
    p.add_argument("--check", action="store_true", help="fail when a committed spec is stale")
    p.add_argument("--out", default=str(SPEC_DIR))
    p = sub.add_parser("token", help="mint a development JWT (the gateway's dev issuer)")
    p.add_argument("--sub", required=True, help="subject: a customer, a till, an operator")
    p.add_argument("--scope", action="append", default=[], help="scopes, space-separated")
    p.add_argument("--store-id", help="the till's store, for POS tokens")
    p.add_argument("--role", action="append", help="a role, such as admin (repeatable)")
    p.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    p = sub.add_parser("keys", help="partner API keys")
    keys = p.add_subparsers(dest="action", required=True)
    k = keys.add_parser("create", help="mint a key (shown once)")
    k.add_argument("--partner", required=True)
    k.add_argument("--scope", action="append", default=[], help="scopes, comma or space separated")
    k.add_argument("--plan", default="partner")
    k.add_argument("--label", default="")
    k.add_argument("--expires-days", type=float, default=None)
    k.add_argument("--env", choices=["live", "test"], default="live")
    k = keys.add_parser("list", help="keys (never the keys themselves)")
    k.add_argument("--partner")
    k = keys.add_parser("rotate", help="a new key; the old one works for a grace period")
    k.add_argument("key_id")
    k.add_argument("--grace-hours", type=float, default=24.0)
    k = keys.add_parser("revoke", help="revoke at once, on every gateway replica")
    k.add_argument("key_id")
    p = sub.add_parser("partners", help="partners (a key is minted for a registered partner)")
    partners = p.add_subparsers(dest="action", required=True)
    k = partners.add_parser("add", help="register a partner")
    k.add_argument("partner_id")
    k.add_argument("--name", help="display name (the id when left out)")
    partners.add_parser("list", help="registered partners")
    args = parser.parse_args(argv)
    handler = {
        "run": cmd_run,
        "run-mesh": cmd_run_mesh,
        "seed": cmd_seed,
        "openapi": cmd_openapi,
        "token": cmd_token,
        "keys": cmd_keys,
        "partners": cmd_partners,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
