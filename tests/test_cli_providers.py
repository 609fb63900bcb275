"""``mcc inventory``, ``mcc billing``, ``mcc providers test|list`` against local provider fakes."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes.digitalocean import DigitalOceanFake
from fakes.server import FakeApi, FakeServer
from fakes.vultr import VultrFake

from multicloud_collector.cli import main

VULTR_KEY = "cli-vultr-key-123456"
DO_TOKEN = "cli-do-token-abcdef"


class ThreadedFake:
    """A fake API served from its own thread and loop (the CLI runs its own ``asyncio.run``)."""

    def __init__(self, fake: FakeApi) -> None:
        self.fake = fake
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with FakeServer(self.fake) as srv:
            self.url = srv.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedFake:
        self._thread.start()
        assert self._ready.wait(10), "fake server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, ThreadedFake]]:
    with (
        ThreadedFake(VultrFake(token=VULTR_KEY)) as vultr,
        ThreadedFake(DigitalOceanFake(token=DO_TOKEN)) as do,
    ):
        yield {"vultr": vultr, "digitalocean": do}


@pytest.fixture
def cfg(tmp_path: Path, fakes: dict[str, ThreadedFake], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VULTR_API_KEY", VULTR_KEY)
    monkeypatch.setenv("DO_TOKEN", DO_TOKEN)
    monkeypatch.setenv("BAD_TOKEN", "wrong-token-value")
    text = f"""
collector: {{state_dir: {tmp_path / "state"}, listen: "127.0.0.1:0"}}
sink: {{kind: embedded, embedded: {{path: {tmp_path / "chdb"}}}}}
providers:
  vultr: {{category: gpu-cloud, capabilities: [prometheus, inventory_api], adapter: vultr}}
  digitalocean: {{category: general, capabilities: [prometheus, inventory_api], adapter: digitalocean}}
  onprem: {{category: on-prem}}
accounts:
  - id: acme-vultr
    customer: acme
    provider: vultr
    api: {{api_key: "${{VULTR_API_KEY}}", base_url: "{fakes["vultr"].url}/v2"}}
  - id: acme-do
    customer: acme
    provider: digitalocean
    api: {{token: "${{DO_TOKEN}}", base_url: "{fakes["digitalocean"].url}/v2"}}
  - id: bad-do
    customer: acme
    provider: digitalocean
    api: {{token: "${{BAD_TOKEN}}", base_url: "{fakes["digitalocean"].url}/v2"}}
  - id: lab
    customer: acme
    provider: onprem
    exporters: [{{url: "http://127.0.0.1:9/metrics", kind: node}}]
"""
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_inventory_table_and_json(cfg: Path) -> None:
    code, out, err = run("inventory", "-c", str(cfg), "--account", "acme-vultr")
    assert code == 0, err
    assert "vultr-node-1" in out and "1x NVIDIA_A100" in out and "6 instance(s)" in out
    code, out, _ = run("inventory", "-c", str(cfg), "--account", "acme-do", "--json")
    data: list[dict[str, Any]] = orjson.loads(out)
    gpu = next(i for i in data if i["instance_type"] == "gpu-h100x8-640gb")
    assert (
        code == 0
        and gpu["hourly_price"] == "23.92"
        and gpu["price_source"] == "api"
        and gpu["gpu_count"] == 8
    )
    assert len(data) == 8


def test_billing_table_and_json(cfg: Path) -> None:
    code, out, err = run("billing", "-c", str(cfg), "--account", "acme-vultr")
    assert code == 0, err
    assert "total invoice_item: 1203.1 USD" in out and "total balance: -100.55 USD" in out
    code, out, _ = run("billing", "-c", str(cfg), "--account", "acme-do", "--json")
    lines = orjson.loads(out)
    assert code == 0 and lines[0] == {
        **lines[0],
        "kind": "balance",
        "amount": "12.23",
        "currency": "USD",
    }


def test_providers_test_ok_and_failing(cfg: Path) -> None:
    code, out, err = run("providers", "test", "-c", str(cfg), "acme-do")
    assert code == 0, err
    assert out.startswith("DigitalOcean at http://127.0.0.1:") and out.count("ok ") == 3
    code, out, err = run("providers", "test", "-c", str(cfg), "bad-do")
    assert code == 1
    assert err.strip() == "error: 401 from /v2/account: token rejected (Unable to authenticate you.)"
    assert "wrong-token-value" not in out + err
    code, out, _ = run("providers", "test", "-c", str(cfg), "bad-do", "--json")
    payload = orjson.loads(out)
    assert code == 1 and payload["ok"] is False and payload["checks"][0]["status"] == 401


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("inventory", "--account", "nope"),
            "error: unknown account 'nope' (accounts: acme-vultr, acme-do, bad-do, lab)",
        ),
        (
            ("billing", "--account", "lab"),
            "error: account 'lab' has no api: block (provider API collection is off)",
        ),
    ],
)
def test_bad_accounts(cfg: Path, argv: tuple[str, ...], message: str) -> None:
    code, _, err = run(*argv[:1], "-c", str(cfg), *argv[1:])
    assert code == 2 and err.strip().splitlines()[-1] == message


def test_invalid_api_config_is_reported_by_validate(cfg: Path) -> None:
    text = cfg.read_text().replace(
        'api: {api_key: "${VULTR_API_KEY}",', 'api: {api_key: "${VULTR_API_KEY}", hours_per_month: 0,'
    )
    cfg.write_text(text)
    code, out, _ = run("validate", "-c", str(cfg))
    assert code == 2
    assert "accounts[0].api.hours_per_month: must be an integer 1-744 (line 12)" in out.splitlines()


def test_api_failure_exit_code(cfg: Path) -> None:
    code, _, err = run("inventory", "-c", str(cfg), "--account", "bad-do")
    assert (
        code == 1
        and err.strip() == "error: 401 from /v2/droplets: token rejected (Unable to authenticate you.)"
    )


def test_providers_list_shows_adapters_with_package(cfg: Path) -> None:
    code, out, _ = run("providers", "list", "-c", str(cfg), "--json")
    rows = orjson.loads(out)
    adapters = {r["name"]: r for r in rows if r["type"] == "adapter"}
    assert code == 0 and {"vultr", "digitalocean"} <= set(adapters)
    assert adapters["vultr"]["package"] == "multicloud-collector (builtin)"


def test_collect_once_runs_api_jobs_and_stores_their_rows(cfg: Path) -> None:
    code, out, err = run(
        "collect", "--once", "-c", str(cfg), "--account", "acme-vultr", "--account", "bad-do", "--json"
    )
    assert code == 1, "bad-do has a rejected token, so the cycle reports a failure"
    rows = {(r["account"], r["kind"]): r for r in orjson.loads(out)}
    assert set(rows) == {
        ("acme-vultr", "api:inventory"),
        ("acme-vultr", "api:billing"),
        ("bad-do", "api:inventory"),
        ("bad-do", "api:billing"),
    }
    assert rows["acme-vultr", "api:inventory"]["status"] == "ok"
    assert rows["acme-vultr", "api:inventory"]["samples"] == 6  # the fake's six instances
    assert (
        rows["acme-vultr", "api:billing"]["status"] == "ok"
        and rows["acme-vultr", "api:billing"]["samples"] > 0
    )
    bad = rows["bad-do", "api:inventory"]
    assert bad["status"] == "error" and bad["error"].startswith("401 from ")
    assert "wrong-token-value" not in out

    code, out, err = run("query", "-c", str(cfg), "SELECT count() FROM mcc.instances FINAL", "-f", "TSV")
    assert code == 0, err
    assert int(out.strip()) == 6
    code, out, _ = run(
        "query",
        "-c",
        str(cfg),
        "SELECT last_status FROM mcc.provider_metadata FINAL WHERE account = 'bad-do'",
        "-f",
        "TSV",
    )
    assert set(out.split()) == {"degraded"}
