"""The catalogue kept in process: unknown SKUs are known as such from a cached read; a SKU
the ERP cannot be asked about now counts as known (the ERP refuses it later) rather than
holding a store's sales up."""

from __future__ import annotations

from pathlib import Path

from services.erp.app import ErpSettings, create_app
from services.kit.app import Runtime
from services.kit.catalogue import Catalogue
from services.kit.registry import Registry
from tests.conftest import Running


async def test_unknown_skus_come_from_cached_reads_and_an_absent_erp_blocks_nothing(
    tmp_path: Path,
) -> None:
    erp = create_app(ErpSettings(data_dir=str(tmp_path), redis_mode="off"))
    async with Running(erp):
        registry = Registry(apps={"erp": erp})
        runtime = Runtime("pos", ErpSettings(data_dir=str(tmp_path), redis_mode="off"), registry)
        catalogue = Catalogue(runtime.client("erp"))
        assert await catalogue.unknown(["SKU-000001", "SKU-999999", "SKU-000002"]) == {"SKU-999999"}
        erp.state.conditions.failure_rate = 1.0  # the ERP is down now
        calls = erp.state.conditions.calls
        # cached: the same answer without a call
        assert await catalogue.unknown(["SKU-000001", "SKU-999999"]) == {"SKU-999999"}
        assert erp.state.conditions.calls == calls
        # never seen and the ERP away: not refused here
        assert await catalogue.unknown(["SKU-000003"]) == set()
