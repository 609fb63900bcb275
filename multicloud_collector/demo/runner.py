"""``mcc demo``: the real collector against a simulated fleet, then a summary from the store.

Everything runs in this one process on 127.0.0.1 and is torn down before returning, so the demo
leaves no process behind and finishes inside ``duration`` (the summary's time is reserved up
front).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

import orjson

from multicloud_collector.config import load_config
from multicloud_collector.daemon import Daemon
from multicloud_collector.demo.config import demo_config_yaml
from multicloud_collector.demo.fleet import FleetSimulator
from multicloud_collector.demo.providers_sim import ProviderApiSimulator

SUMMARY_BUDGET_S = 4.0


def _mcc_command() -> str:
    """How the user can call mcc from here (``./dev demo`` does not put .venv/bin on PATH)."""
    if shutil.which("mcc"):
        return "mcc"
    sibling = Path(sys.executable).with_name("mcc")
    return str(sibling) if sibling.exists() else f"{sys.executable} -m multicloud_collector"
PROGRESS_EVERY_S = 5.0
MIN_DURATION_S = 8.0


async def _rows(daemon: Daemon, sql: str) -> list[dict[str, object]]:
    raw = await daemon.query(sql, "JSONEachRow")
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


async def run_demo(*, duration: float, data_dir: Path, interval: str = "2s", out: TextIO) -> int:
    started = time.monotonic()
    duration = max(duration, MIN_DURATION_S)
    deadline = started + duration - SUMMARY_BUDGET_S
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    fleet = FleetSimulator(seed=42)
    await fleet.start()
    apis = ProviderApiSimulator(fleet)
    try:
        await apis.start()
        cfg_path = data_dir / "demo.yaml"
        text = demo_config_yaml(fleet, data_dir, listen="127.0.0.1:0", interval=interval, apis=apis)
        await asyncio.to_thread(cfg_path.write_text, text)
        config = load_config(cfg_path, {})
        providers = sorted({h.provider for h in fleet.hosts})
        gpus = sum(h.gpus for h in fleet.hosts)
        print(
            f"Simulated fleet on 127.0.0.1:{fleet.port}: {len(fleet.hosts)} hosts, {gpus} GPUs, "
            f"{len(providers)} providers ({', '.join(providers)}); collecting every {interval} "
            f"for {duration - SUMMARY_BUDGET_S:.0f}s into {config.sink.embedded.path}",
            file=out,
            flush=True,
        )
        daemon = Daemon(config)
        ready = asyncio.Event()
        run_task = asyncio.create_task(daemon.run(install_signals=True, on_ready=lambda _d: ready.set()))
        await _wait_ready(ready, run_task)
        if daemon.server is not None:
            print(f"Status page and API: http://127.0.0.1:{daemon.server.port}/", file=out, flush=True)
        while not run_task.done():
            now = time.monotonic()
            if now >= deadline or daemon.stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(run_task), timeout=min(PROGRESS_EVERY_S, deadline - now)
                )
            if not run_task.done() and deadline - time.monotonic() > 1.0:  # the summary follows anyway
                await _progress(daemon, started, out)
        if not run_task.done():
            summary = await _summary(daemon)
            daemon.stop.set()
        else:
            summary = []
        code = await run_task
    finally:
        await apis.stop()
        await fleet.stop()
    for line in summary:
        print(line, file=out)
    mcc = _mcc_command()
    print(
        f"\nData lives in {config.sink.embedded.path} (embedded ClickHouse, database "
        f"'{config.sink.embedded.database}'). Query it with:\n"
        f'  {mcc} query -c {cfg_path} "SELECT provider, count() FROM mcc.gpu_samples GROUP BY provider"\n'
        f"Run the demo config as a daemon with: {mcc} run -c {cfg_path}",
        file=out,
    )
    print(f"demo finished in {time.monotonic() - started:.1f}s", file=out)
    return code


async def _wait_ready(ready: asyncio.Event, run_task: asyncio.Task[int]) -> None:
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({waiter, run_task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if run_task.done():
        run_task.result()  # re-raise the start-up error


async def _progress(daemon: Daemon, started: float, out: TextIO) -> None:
    rows = await _rows(
        daemon,
        "SELECT (SELECT count() FROM mcc.samples) AS samples, "
        "(SELECT count() FROM mcc.gpu_samples) AS gpu_rows, "
        "(SELECT count() FROM mcc.scrape_log) AS scrapes",
    )
    up = sum(1 for r in daemon.metrics.last_reports.values() if r.status.value == "ok")
    total = len(daemon.metrics.last_reports)
    r = rows[0] if rows else {}
    print(
        f"  t={time.monotonic() - started:4.0f}s  targets up {up}/{total}  "
        f"samples {r.get('samples', 0):,}  gpu rows {r.get('gpu_rows', 0):,}  "
        f"scrapes {r.get('scrapes', 0):,}",
        file=out,
        flush=True,
    )


async def _summary(daemon: Daemon) -> list[str]:
    reports = daemon.metrics.last_reports.values()
    up = sum(1 for r in reports if r.status.value == "ok")
    lines = [f"\nTargets up: {up}/{len(daemon.metrics.last_reports)}", "", "Rows stored per table:"]
    for table in ("samples", "gpu_samples", "scrape_log"):
        n = await _rows(daemon, f"SELECT count() AS n FROM mcc.{table}")
        lines.append(f"  {table:<12} {int(str(n[0]['n'])):>10,}")
    gpu = await _rows(
        daemon,
        "SELECT provider, uniqExact(host) AS hosts, uniqExact(gpu_uuid) AS gpus, "
        "round(avg(gpu_util_percent), 1) AS mean_util, round(avg(power_watts), 0) AS mean_power_w "
        "FROM mcc.gpu_samples GROUP BY provider ORDER BY provider",
    )
    lines += [
        "",
        "GPUs by provider:",
        f"  {'provider':<12} {'hosts':>5} {'gpus':>5} {'mean util %':>12} {'mean W':>8}",
    ]
    for r in gpu:
        lines.append(
            f"  {r['provider']!s:<12} {r['hosts']!s:>5} {r['gpus']!s:>5} "
            f"{r['mean_util']!s:>12} {r['mean_power_w']!s:>8}"
        )
    return lines + await _cost_summary(daemon)


async def _cost_summary(daemon: Daemon) -> list[str]:
    """Cost and idle-GPU cost per provider from the ``gpu_cost_hourly`` view (simulated list prices)."""
    rows = await _rows(
        daemon,
        "SELECT provider AS p, any(currency) AS cur, sum(gpu_hours) AS gh, "
        "sum(mean_util_percent * gpu_hours) / nullIf(sum(gpu_hours), 0) AS util, "
        "sum(cost) AS total, sum(idle_cost) AS idle, sum(unpriced_gpu_hours) AS unpriced "
        "FROM mcc.gpu_cost_hourly GROUP BY provider, currency ORDER BY provider, currency",
    )
    lines = [
        "",
        "GPU cost by provider (prices from the simulated provider APIs; idle = cost x (1 - util)):",
        f"  {'provider':<12} {'GPU-hours':>10} {'util %':>7} {'cost':>10} {'idle cost':>10} {'idle %':>7}",
    ]
    for r in rows:
        cost, idle = float(str(r["total"] or 0)), float(str(r["idle"] or 0))
        if float(str(r["unpriced"] or 0)) > 0 and cost == 0:
            lines.append(
                f"  {r['p']!s:<12} {float(str(r['gh'])):>10.3f}   (no provider API: no price)"
            )
            continue
        util = "-" if r["util"] is None else f"{float(str(r['util'])):.1f}"
        share = f"{100 * idle / cost:.0f}" if cost else "-"
        lines.append(
            f"  {r['p']!s:<12} {float(str(r['gh'])):>10.3f} {util:>7} "
            f"{cost:>10.4f} {idle:>10.4f} {share:>7} {r['cur'] or ''}"
        )
    return lines
