"""Conditional GET: which If-None-Match values match an entity tag (RFC 9110 13.1.2)."""

from __future__ import annotations

from services.kit.conditional import entity_tag, not_modified


def test_the_tag_is_the_bodys_and_matches_weakly() -> None:
    tag = entity_tag(b'{"a":1}')
    assert tag == entity_tag(b'{"a":1}') != entity_tag(b'{"a":2}')
    assert tag.startswith('"') and tag.endswith('"')
    assert not_modified(tag, tag)
    assert not_modified("W/" + tag, tag)  # weak comparison for GET
    assert not_modified(f'"other", {tag}', tag)
    assert not_modified("*", tag)
    assert not not_modified(None, tag)
    assert not not_modified("", tag)
    assert not not_modified('"other"', tag)
    assert not not_modified(tag[:-2] + '"', tag)
