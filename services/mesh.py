"""Composition of the whole mesh: which services exist, the embedded app, the specs.

embedded   one process: the gateway fronts every service mounted in-process
mesh       each service its own process; the gateway reaches them over HTTP
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.app import Gateway, GatewaySettings, create_gateway
from gateway.config import load_config
from gateway.spec import external_spec
from services.care.app import CareSettings
from services.care.app import create_app as create_care
from services.erp.app import ErpSettings
from services.erp.app import create_app as create_erp
from services.inventory.app import InventorySettings
from services.inventory.app import create_app as create_inventory
from services.kit.logs import configure_logging
from services.kit.openapi import openapi_document, structs_of
from services.kit.registry import Registry
from services.loyalty.app import LoyaltySettings
from services.loyalty.app import create_app as create_loyalty
from services.orders.app import OrdersSettings
from services.orders.app import create_app as create_orders
from services.partner.app import PartnerSettings
from services.partner.app import create_app as create_partner
from services.pos.app import PosSettings
from services.pos.app import create_app as create_pos
from services.store.app import StoreSettings
from services.store.app import create_app as create_store
from services.web.app import WebSettings
from services.web.app import create_app as create_web

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = [
    "SERVICES",
    "build_embedded",
    "build_gateway_for_mesh",
    "gateway_spec",
    "service_specs",
]

#: name → (settings type, app factory). A new service is one line here.
SERVICES: dict[str, tuple[type[Any], Callable[..., Litestar]]] = {
    "erp": (ErpSettings, create_erp),
    "inventory": (InventorySettings, create_inventory),
    "pos": (PosSettings, create_pos),
    "loyalty": (LoyaltySettings, create_loyalty),
    "orders": (OrdersSettings, create_orders),
    "web": (WebSettings, create_web),
    "store": (StoreSettings, create_store),
    "partner": (PartnerSettings, create_partner),
    "care": (CareSettings, create_care),
}


def _service_apps(environ: Mapping[str, str], registry: Registry) -> dict[str, Litestar]:
    apps = {}
    for name, (settings_type, factory) in SERVICES.items():
        apps[name] = factory(settings_type.from_env(environ), registry=registry)
    return apps


def service_specs() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI document, generated from its app (nothing is started)."""
    registry = Registry()
    return {
        # with the service's own structs (`structs_of` its app's module): their schemas as
        # msgspec validates them, as for the shared contracts
        name: openapi_document(
            app, structs_of(importlib.import_module(SERVICES[name][1].__module__))
        )
        for name, app in _service_apps({"SEED": "false"}, registry).items()
    }


def gateway_spec(settings: GatewaySettings, own: dict[str, Any]) -> dict[str, Any]:
    return external_spec(load_config(settings.gateway_config), service_specs(), own)


def _build(settings: GatewaySettings, registry: Registry, mounted: list[Any]) -> Gateway:
    holder: dict[str, Gateway] = {}

    def spec() -> dict[str, Any]:
        return gateway_spec(settings, holder["gw"].own_spec())

    gateway = create_gateway(settings, registry, spec=spec, mounted=mounted)
    holder["gw"] = gateway
    return gateway


def build_embedded(environ: Mapping[str, str]) -> Gateway:
    """The whole mesh in one ASGI app: the gateway with every service in-process."""
    settings = GatewaySettings.from_env(environ)
    registry = Registry(timeout=settings.request_timeout_s)
    apps = _service_apps(environ, registry)
    registry.apps.update(apps)
    return _build(settings, registry, list(apps.values()))


def build_gateway_for_mesh(environ: Mapping[str, str]) -> Gateway:
    """The gateway alone, reaching the services at SERVICE_URLS."""
    settings = GatewaySettings.from_env(environ)
    if not settings.service_urls:
        raise SystemExit("SERVICE_URLS is required in the mesh mode (erp=http://host:port,...)")
    return _build(settings, Registry(timeout=settings.request_timeout_s), [])


def embedded_from_env() -> Gateway:
    """ASGI factory for the embedded mode (`granian --factory services.mesh:embedded_from_env`)."""
    settings = GatewaySettings.from_env(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return build_embedded(os.environ)


def gateway_from_env() -> Gateway:
    """ASGI factory for the gateway in the mesh mode."""
    settings = GatewaySettings.from_env(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return build_gateway_for_mesh(os.environ)
