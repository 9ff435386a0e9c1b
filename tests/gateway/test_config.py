"""A bad gateway configuration stops the start-up with the path of the bad entry."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_config

GOOD = b"""
[upstreams.erp]
service = "erp"
[[apis]]
name = "erp"
upstream = "erp"
  [[apis.versions]]
  version = "v1"
"""


def test_the_shipped_config_loads() -> None:
    config = load_config("deploy/config/gateway.toml")
    assert [a.name for a in config.apis] == [
        "erp",
        "inventory",
        "pos",
        "loyalty",
        "orders",
        "web",
        "store",
        "partner",
        "care",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ((b'upstream = "erp"', b'upstream = "pos"'), "apis[0].upstream: unknown upstream 'pos'"),
        ((b'version = "v1"', b'version = "1"'), "apis[0].versions[0].version"),
        ((b'version = "v1"', b'version = "v1"\n  status = "old"'), "apis[0].versions[0].status"),
        ((b'service = "erp"', b'service = "erp"\ntimeout_s = -1'), "upstreams.erp.timeout_s"),
        ((b'name = "erp"', b'name = "erp"\nsurprise = 1'), "apis[0]"),
        ((b"[upstreams.erp]", b"[upstreams.erp"), "not valid TOML"),
    ],
)
def test_bad_entries_are_named(change: tuple[bytes, bytes], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(GOOD.replace(*change))
    assert message in str(info.value)


def test_duplicate_versions_are_refused() -> None:
    doubled = GOOD + b'  [[apis.versions]]\n  version = "v1"\n'
    with pytest.raises(ConfigError, match=r"apis\[0\].versions\[1\].version: v1 is declared twice"):
        load_config(doubled)
