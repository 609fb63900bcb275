"""DcgmScraper against a loopback server serving the H100 dcgm-exporter fixture."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from support.services import AppServers, fixture_bytes, free_port

from multicloud_collector.model import ScrapeStatus, TargetContext
from multicloud_collector.scrape.base import Target
from multicloud_collector.scrape.dcgm import DcgmScraper

DCGM = fixture_bytes("h100_8gpu.prom")


def target(url: str) -> Target:
    tid = f"acct-1/dcgm/{url}"
    return Target(
        ctx=TargetContext("cust-1", "coreweave", "acct-1", tid, "dcgm", "dcgm"),
        url=url,
        interval=5.0,
        timeout=2.0,
        extra_labels=(("customer", "cust-1"),),
    )


async def serve(app_servers: AppServers, body: bytes, status: int = 200) -> str:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return await app_servers.start(app) + "/metrics"


async def test_gpu_rows_from_fixture(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    url = await serve(app_servers, DCGM)
    out = await DcgmScraper().scrape(target(url), session)
    assert out.report.status is ScrapeStatus.OK, out.report.error
    assert len(out.gpus) == 8
    assert sorted(g.gpu_index for g in out.gpus) == list(range(8))
    g0 = next(g for g in out.gpus if g.gpu_index == 0)
    assert g0.gpu_uuid == "GPU-a3b1799d-1c80-0667-bdd6-3eb146685257"
    assert g0.metrics["sm_clock_mhz"] == 1980
    assert g0.target == target(url).id
    # Mapped DCGM fields are not duplicated into the long table; the synthetic series are there.
    metrics = {s.metric for s in out.blocks[0].series}
    assert "DCGM_FI_DEV_SM_CLOCK" not in metrics
    assert {"up", "scrape_samples_scraped", "scrape_body_bytes"} <= metrics
    up = out.blocks[0].values[[s.metric for s in out.blocks[0].series].index("up")]
    assert up == 1.0
    assert out.report.bytes == len(DCGM)
    assert out.report.samples > 0


async def test_missing_dcgm_endpoint_is_an_error_for_this_target(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    url404 = await serve(app_servers, b"404 page not found", status=404)
    refused = f"http://127.0.0.1:{free_port()}/metrics"
    scraper = DcgmScraper()
    out404 = await scraper.scrape(target(url404), session)
    out_refused = await scraper.scrape(target(refused), session)
    assert (out404.report.status, out404.report.error_reason) == (ScrapeStatus.ERROR, "http_status")
    assert (out_refused.report.status, out_refused.report.error_reason) == (ScrapeStatus.ERROR, "connection")
    assert out404.gpus == [] and out_refused.gpus == []
    assert "HTTP 404" in out404.report.error


async def test_parse_error_is_reported(app_servers: AppServers, session: aiohttp.ClientSession) -> None:
    url = await serve(app_servers, b'DCGM_FI_DEV_GPU_UTIL{gpu="0" 5\n')
    out = await DcgmScraper().scrape(target(url), session)
    assert out.report.error_reason == "parse"
    assert out.gpus == []


async def test_exporter_without_gpus_is_ok_but_empty(
    app_servers: AppServers, session: aiohttp.ClientSession
) -> None:
    url = await serve(app_servers, b"# no GPUs visible\nprocess_open_fds 12\n")
    out = await DcgmScraper().scrape(target(url), session)
    assert out.report.status is ScrapeStatus.OK
    assert out.gpus == []
    assert "process_open_fds" in {s.metric for s in out.blocks[0].series}
