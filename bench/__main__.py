"""Run every benchmark and print their reports."""

from __future__ import annotations

from bench import checkout, flash_sale, gateway_vs_haproxy, pos_ingest

if __name__ == "__main__":
    print(gateway_vs_haproxy.report(gateway_vs_haproxy.run()), flush=True)
    print(flash_sale.report(flash_sale.run()), flush=True)
    print(pos_ingest.report(pos_ingest.run()), flush=True)
    print(checkout.report(checkout.run()), flush=True)
