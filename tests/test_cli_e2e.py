"""End to end through the ``mcc`` command line: validate, collect --once, run + query, demo.

The targets are the simulated fleet on 127.0.0.1; the store is the real embedded ClickHouse.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fleet_thread import fleet_in_thread

from multicloud_collector.cli import main
from multicloud_collector.demo.config import demo_config
from multicloud_collector.demo.fleet import FleetSimulator

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = dict(os.environ)
    if env:
        os.environ.update(env)
    try:
        code = main(list(argv), stdout=out, stderr=err)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return code, out.getvalue(), err.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(fleet: FleetSimulator, tmp: Path, listen: str = "127.0.0.1:0", interval: str = "1s") -> Path:
    import yaml

    cfg = demo_config(fleet, tmp, listen=listen, interval=interval)
    path = tmp / "mcc.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetSimulator]:
    with fleet_in_thread(seed=7, hosts_per_provider=2, providers=("vultr", "runpod", "lambda")) as f:
        yield f


# -- validate ----------------------------------------------------------------------------------
def test_validate_shipped_config_is_ok() -> None:
    code, out, _ = run_cli("validate", "-c", str(REPO / "providers.yaml"))
    assert code == 0
    assert out.strip().splitlines()[-1] == "ok"


def test_validate_reports_every_problem_by_path_and_never_the_secret(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "collector:\n  intervall: 15s\n"
        "providers:\n  vultr: {category: gpu-cloud}\n"
        "accounts:\n"
        "  - id: a\n    customer: c\n    provider: vultur\n"
        "    exporters:\n      - {url: 'ftp://x', kind: node}\n"
        "    api: {api_key: '${MISSING_KEY_FOR_TEST}', other_key: '${CANARY_VAR}'}\n"
    )
    code, out, _ = run_cli("validate", "-c", str(bad), env={"CANARY_VAR": "canary-secret-value-42"})
    assert code == 2
    lines = out.strip().splitlines()
    assert any(line.startswith("collector.intervall: unknown key") and "interval" in line for line in lines)
    assert any(line.startswith("accounts[0].provider:") and "vultr" in line for line in lines)
    assert any(line.startswith("accounts[0].exporters[0].url: not a valid http(s) URL") for line in lines)
    assert any(
        "MISSING_KEY_FOR_TEST" in line and line.startswith("accounts[0].api.api_key") for line in lines
    )
    assert "canary-secret-value-42" not in out


def test_validate_broken_yaml_gives_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("collector:\n  interval: 15s\n  listen: [unclosed\n")
    code, out, _ = run_cli("validate", "-c", str(bad))
    assert code == 2
    assert "broken.yaml:" in out and ":" in out.split("broken.yaml:", 1)[1]


# -- collect --once ------------------------------------------------------------------------------
def test_collect_once_stores_rows_and_reports_each_target(fleet: FleetSimulator, tmp_path: Path) -> None:
    cfg = write_config(fleet, tmp_path)
    down = fleet.hosts[0]
    fleet.set_down(down, "dcgm")
    try:
        code, out, _ = run_cli("collect", "--once", "-c", str(cfg), "--json")
    finally:
        fleet.set_down(down, "dcgm", down=False)
    assert code == 1, "one target was down, so the exit code must say so"
    rows = json.loads(out)
    required = {"account", "provider", "target", "kind", "status", "samples", "duration_ms", "error"}
    assert all(required <= set(r) for r in rows)
    failed = [r for r in rows if r["status"] != "ok"]
    assert len(failed) == 1 and failed[0]["kind"] == "dcgm" and down.name in failed[0]["url"]
    assert "503" in failed[0]["error"]
    hosts = len(fleet.hosts)
    assert len(rows) == 2 * hosts + len({(h.provider, h.customer) for h in fleet.hosts})

    code, out, err = run_cli("query", "-c", str(cfg), "SELECT count() FROM mcc.scrape_log", "-f", "TSV")
    assert code == 0, err
    assert int(out.strip()) == len(rows)
    code, out, _ = run_cli("query", "-c", str(cfg), "SELECT count() FROM mcc.gpu_samples", "-f", "TSV")
    assert int(out.strip()) == sum(r["gpus"] for r in rows) > 0
    code, out, _ = run_cli(
        "query",
        "-c",
        str(cfg),
        "SELECT uniqExact(provider) FROM mcc.samples WHERE metric = 'up'",
        "-f",
        "TSV",
    )
    assert int(out.strip()) == 3


def test_collect_once_unknown_account_is_a_usage_error(fleet: FleetSimulator, tmp_path: Path) -> None:
    cfg = write_config(fleet, tmp_path)
    code, _, err = run_cli("collect", "--once", "-c", str(cfg), "--account", "nope", "--no-store")
    assert code == 2 and "nope" in err


def test_collect_once_single_account_table_output(fleet: FleetSimulator, tmp_path: Path) -> None:
    cfg = write_config(fleet, tmp_path)
    account = f"{fleet.hosts[0].customer}-{fleet.hosts[0].provider}"
    code, out, _ = run_cli("collect", "--once", "-c", str(cfg), "--account", account, "--no-store")
    assert code == 0
    body = out.splitlines()
    assert body[0].split()[:4] == ["ACCOUNT", "PROVIDER", "KIND", "STATUS"]
    assert all(line.split()[0] == account for line in body[1:] if line and not line[0].isdigit())
    assert "failed" in body[-1] and " 0 failed" in body[-1]


# -- run + query through the daemon + SIGTERM ---------------------------------------------------------
def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_run_daemon_query_while_running_then_sigterm_flushes(fleet: FleetSimulator, tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(fleet, tmp_path, listen=f"127.0.0.1:{port}", interval="1s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "multicloud_collector", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _wait(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 60, "/readyz")

        def stored() -> int:
            code, out, _ = run_cli("query", "-c", str(cfg), "SELECT count() FROM mcc.scrape_log", "-f", "TSV")
            return int(out.strip()) if code == 0 else -1

        _wait(lambda: stored() >= 2 * len(fleet.hosts), 60, "rows visible through the daemon")
        seen = stored()
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"mcc_scrapes_total" in body and b"mcc_event_loop_lag_seconds" in body
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0, stderr
        assert "collector_stopped" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The store is free again: the CLI opens it directly and sees at least what was there before.
    code, out, err = run_cli("query", "-c", str(cfg), "SELECT count() FROM mcc.scrape_log", "-f", "TSV")
    assert code == 0, err
    assert int(out.strip()) >= seen


# -- demo -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_finishes_within_duration_and_leaves_nothing_running(tmp_path: Path) -> None:
    duration = 12
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "multicloud_collector", "demo", "--duration", str(duration)]
    proc = subprocess.Popen(
        [*cmd, "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    out, err = proc.communicate(timeout=duration + 60)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, err
    finished = float(out.rsplit("demo finished in ", 1)[1].split("s", 1)[0])
    assert finished <= duration
    assert wall < duration + 30  # interpreter + chDB import happen before the demo clock starts
    gpu_table = out.split("GPUs by provider:", 1)[1].strip().splitlines()[1:]
    providers = {line.split()[0] for line in gpu_table if line.strip() and not line.startswith("Data")}
    assert len(providers & {"vultr", "runpod", "lambda", "coreweave", "onprem"}) >= 3
    up, total = out.split("Targets up: ", 1)[1].split()[0].split("/")
    # Every target is healthy; allow a few timeouts when the machine is busy (2 cores, 1.5 s timeout).
    assert int(total) >= 40 and int(up) >= 0.8 * int(total)
    hosts = int(out.split(" hosts,", 1)[0].split()[-1])
    assert hosts >= 20
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # the demo's whole process group is gone


# -- providers list, --version -------------------------------------------------------------------
def test_providers_list_json_has_catalog_and_builtin_kinds() -> None:
    code, out, _ = run_cli("providers", "list", "-c", str(REPO / "providers.yaml"), "--json")
    assert code == 0
    rows = json.loads(out)
    providers = [r for r in rows if r["type"] == "provider"]
    kinds = {r["name"]: r for r in rows if r["type"] == "scrape_kind"}
    assert len(providers) >= 20
    assert {"node", "dcgm", "generic", "promql"} <= set(kinds)
    assert all("multicloud-collector" in k["package"] for k in kinds.values())


def test_python_dash_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "multicloud_collector", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.startswith("mcc ")
