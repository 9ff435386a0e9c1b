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
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main"]

SPEC_DIR = Path("openapi")
MESH_PORTS = {"erp": 8101}


def _banner(base: str, mode: str) -> None:
    print(
        f"""
retailmesh ({mode}) serving on {base}
  API docs        {base}/docs   (OpenAPI: {base}/openapi.json)
  health          {base}/healthz, {base}/readyz
  try             curl {base}/v1/erp/products/SKU-000001
                  curl {base}/v1/erp/inventory/SKU-000001
                  curl '{base}/v1/erp/products?limit=5'
""",
        flush=True,
    )


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
    _banner(f"http://{args.host}:{args.port}", "embedded: one process")
    _serve("services.mesh:embedded_from_env", args.host, args.port)
    return 0


def cmd_run_mesh(args: argparse.Namespace) -> int:
    """Start every service as its own process, then the gateway, until interrupted."""
    Path(os.environ.get("DATA_DIR", ".data")).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("REDIS_MODE", "required")
    # SIGTERM (a process manager stopping us) takes the same path as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for name, port in MESH_PORTS.items():
            urls.append(f"{name}=http://{args.host}:{port}")
            procs.append(
                _granian_process(f"services.{name}.app:create_app_from_env", args.host, port, env)
            )
        env["SERVICE_URLS"] = ",".join(urls)
        procs.append(_granian_process("services.mesh:gateway_from_env", args.host, args.port, env))
        _banner(f"http://{args.host}:{args.port}", "mesh: " + ", ".join(urls) + ", gateway")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a mesh process exited; stopping the others", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _granian_process(
    target: str, host: str, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
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
        ],
        env=env,
    )


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
    from services.kit.openapi import openapi_document
    from services.mesh import build_embedded, gateway_spec, service_specs

    env = {"SEED": "false", "REDIS_MODE": "off"}
    out = {f"{name}.json": dumps(spec) for name, spec in service_specs().items()}
    gateway = build_embedded(env)
    out["asyncapi.json"] = dumps(asyncapi_document())
    out["gateway.json"] = dumps(gateway_spec(gateway.settings, openapi_document(gateway.internal)))
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
    p = sub.add_parser("seed", help="load the demo data")
    p.add_argument("--reset", action="store_true", help="replace existing data")
    p = sub.add_parser("openapi", help="regenerate the committed OpenAPI specs")
    p.add_argument("--check", action="store_true", help="fail when a committed spec is stale")
    p.add_argument("--out", default=str(SPEC_DIR))
    args = parser.parse_args(argv)
    handler = {
        "run": cmd_run,
        "run-mesh": cmd_run_mesh,
        "seed": cmd_seed,
        "openapi": cmd_openapi,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
