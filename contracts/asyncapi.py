"""The AsyncAPI 3.0 document of the event streams, generated from the event contracts."""

from __future__ import annotations

import typing
from typing import Any

import msgspec

from contracts.bounds import publish_patterns
from contracts.events import STREAMS, Envelope

__all__ = ["asyncapi_document"]


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    types: list[Any] = []
    for union in STREAMS.values():
        members = typing.get_args(union) or (union,)
        types += [Envelope[member] for member in members]  # type: ignore[valid-type]
    _, schemas = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    publish_patterns(schemas)
    for stream, union in STREAMS.items():
        members = typing.get_args(union) or (union,)
        channel_messages = {}
        for member in members:
            name = member.__name__
            envelope_name = f"Envelope_{name}_"
            messages[name] = {
                "name": name,
                "title": name,
                "summary": (member.__doc__ or name).strip().splitlines()[0],
                "contentType": "application/json",
                "payload": {"$ref": f"#/components/schemas/{envelope_name}"},
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channels[stream] = {
            "address": stream,
            "description": "Redis stream; entry fields: id (event id), type, event (the envelope)",
            "messages": channel_messages,
        }
        operations[f"receive_{stream}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{stream}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "retailmesh events",
            "version": "1.0.0",
            "description": "Facts published through each service's outbox; at-least-once, "
            "consumers dedupe by envelope id. Dead letters go to dlq.<stream>.",
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
