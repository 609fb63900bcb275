"""The out-of-tree plugin path, proven: pip-install ``plugins/mcc-vastai`` and find, list and run it.

The package is installed editable (``--no-deps --no-build-isolation --no-index``: offline, ~2 s, and
skipped when this checkout's copy is already installed), then discovered through the
``multicloud_collector`` entry-point group like any third-party plugin.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from multicloud_collector.config.model import AccountConfig
from multicloud_collector.plugins.manager import Registry, get_plugin_manager, reset_plugin_manager
from multicloud_collector.providers.records import BillingKind, PriceSource
from multicloud_collector.secrets import Secret

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "plugins" / "mcc-vastai"
DIST = "mcc-vastai"


def _installed_from_here() -> bool:
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return False
    raw = dist.read_text("direct_url.json")
    if not raw:
        return False
    info = json.loads(raw)
    return bool(info.get("url") == PLUGIN_DIR.as_uri() and info.get("dir_info", {}).get("editable"))


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MCC_LOAD_PLUGINS", "MCC_TRACE_PLUGINS")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def installed() -> Iterator[None]:
    if not _installed_from_here():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
        ]
        subprocess.run(
            [*cmd, "-e", str(PLUGIN_DIR)], check=True, capture_output=True, timeout=180, env=_clean_env()
        )
        importlib.invalidate_caches()
    assert _installed_from_here()
    # An editable install is wired through a .pth file, read at interpreter start: this process
    # sees the entry point at once, and the module once its directory is on sys.path.
    if importlib.util.find_spec("mcc_vastai") is None:
        sys.path.insert(0, str(PLUGIN_DIR))
        importlib.invalidate_caches()
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def test_cli_lists_the_adapter_with_its_package(installed: None) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "multicloud_collector",
            "providers",
            "list",
            "--json",
            "-c",
            str(ROOT / "providers.yaml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    adapter = next(r for r in rows if r["type"] == "adapter" and r["name"] == "vastai")
    assert adapter["package"] == "mcc-vastai 0.1.0"
    catalog = next(r for r in rows if r["type"] == "provider" and r["name"] == "vastai")
    assert catalog["adapter"] == "vastai"


async def test_discovered_adapter_runs_against_the_shipped_fake(
    installed: None, session: aiohttp.ClientSession
) -> None:
    from mcc_vastai.testing import API_KEY, VastFake, serve

    registry = Registry(get_plugin_manager())
    adapter_cls = registry.adapters["vastai"]
    origin = registry.adapter_origin("vastai")
    assert (origin.plugin_name, origin.package, origin.version) == ("vastai", DIST, "0.1.0")
    fake = VastFake()
    async with serve(fake) as url:
        acct = AccountConfig(
            id="vast-1", customer="acme", provider="vastai", api={"base_url": url, "api_key": Secret(API_KEY)}
        )
        assert adapter_cls.validate_api_config(acct.api, "accounts[0].api") == []
        adapter = adapter_cls(acct, session)
        insts = await adapter.instances()
        assert len(insts) == 30 and sum(i.gpu_count for i in insts) == 3 * 8 + 26 * 2 + 1
        assert {i.price_source for i in insts} == {PriceSource.API}
        running_cost = sum((i.hourly_price or Decimal(0) for i in insts if i.status == "running"), Decimal(0))
        assert running_cost == Decimal("19.254") * 3 + Decimal("0.753") * 22
        lines = await adapter.billing()
        assert [x.amount for x in lines if x.kind == BillingKind.BALANCE] == [Decimal("123.45")]
        assert all(c.ok for c in await adapter.check())
        await adapter.close()
    assert fake.requests and all(path.startswith("/api/") for path, _ in fake.requests)


def test_the_package_own_tests_pass(installed: None) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=PLUGIN_DIR,
        capture_output=True,
        text=True,
        timeout=180,
        env=_clean_env(),
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
