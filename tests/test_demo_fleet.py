"""The simulated fleet: payload rendering, the HTTP server, the PromQL API and the demo config."""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from multicloud_collector.demo import FleetSimulator, SimHost
from multicloud_collector.demo.config import DEMO_QUERIES, demo_config, demo_config_yaml
from multicloud_collector.demo.hosts import build_fleet
from multicloud_collector.demo.payloads import dcgm_families, gpu_values, render_dcgm, render_node
from multicloud_collector.demo.promql_api import (
    PromQLError,
    evaluate,
    format_sample_value,
    parse_query,
    parse_time,
)
from multicloud_collector.demo.textfmt import format_go
from multicloud_collector.demo.workload import Pattern

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "exposition"
BENCH_FIXTURES = Path(__file__).resolve().parent.parent / "bench" / "fixtures"
T0 = 1_790_000_000.0
DCGM_LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"]


def _fixture(name: str) -> str:
    """The exporter fixtures kept in the repo (copies of the shared originals)."""
    return (FIXTURES / Path(name).name).read_text()


@pytest.fixture(scope="module")
def hosts() -> list[SimHost]:
    return build_fleet(seed=7, epoch=T0)


def _by_kind(hosts: list[SimHost], kind: str) -> SimHost:
    return next(h for h in hosts if h.kind == kind and not h.mig)


def _families(text: str) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _values(text: str, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == metric:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


# -- fleet layout ---------------------------------------------------------------------------------
def test_fleet_layout_covers_providers_customers_and_models(hosts: list[SimHost]) -> None:
    assert len(hosts) >= 24
    assert len({h.provider for h in hosts}) >= 4
    assert {h.customer for h in hosts} == {"acme", "globex"}
    pairs = {(h.customer, h.provider) for h in hosts}
    assert len(pairs) == 2 * len({h.provider for h in hosts})
    assert all(1 <= h.gpus <= 8 and len(h.devices) == h.gpus for h in hosts)
    assert {h.gpu_model for h in hosts} >= {"NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L40S"}
    assert sum(h.mig for h in hosts) == 1
    assert {h.kind for h in hosts} == {"training", "idle", "batch", "mixed"}
    assert len({h.name for h in hosts}) == len(hosts)
    assert len({g.uuid for h in hosts for g in h.devices}) == sum(h.gpus for h in hosts)


def test_fleet_is_deterministic_per_seed() -> None:
    a, b, c = (build_fleet(seed=s, epoch=T0) for s in (3, 3, 4))
    assert render_dcgm(a[0], T0 + 5) == render_dcgm(b[0], T0 + 5)
    assert [g.uuid for g in a[0].devices] != [g.uuid for g in c[0].devices]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"hosts_per_provider": 0}, "hosts_per_provider"),
        ({"customers": ()}, "customers"),
        ({"providers": ["aws"]}, "providers"),
    ],
)
def test_build_fleet_rejects_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build_fleet(seed=0, epoch=T0, **kwargs)  # type: ignore[arg-type]


# -- DCGM payload ---------------------------------------------------------------------------------
def test_dcgm_payload_parses_with_fixture_families_and_labels(hosts: list[SimHost]) -> None:
    host = next(h for h in hosts if h.profiling and not h.mig and h.spec.nvlink)
    text = render_dcgm(host, T0 + 30)
    fams = _families(text)
    fixture = _families(_fixture("dcgm/h100_8gpu.prom"))
    assert set(fams) == set(fixture)
    for name, fam in fams.items():
        ref = fixture[name]
        assert (fam.documentation, fam.type) == (ref.documentation, ref.type), name
        assert len(fam.samples) == host.gpus
    first = next(line for line in text.splitlines() if not line.startswith("#"))
    assert re.findall(r'(\w+)="', first) == DCGM_LABELS
    util = fams["DCGM_FI_DEV_GPU_UTIL"].samples[0]
    assert util.labels["Hostname"] == host.name and util.labels["modelName"] == host.gpu_model


def test_dcgm_non_profiling_and_pcie_hosts_omit_fields(hosts: list[SimHost]) -> None:
    plain = next(h for h in hosts if not h.profiling and not h.spec.nvlink)
    fams = _families(render_dcgm(plain, T0))
    assert not any(n.startswith("DCGM_FI_PROF_") for n in fams)
    assert "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL" not in fams
    assert "DCGM_FI_DEV_GPU_UTIL" in fams


def test_mig_host_has_instance_labels_and_no_whole_gpu_util(hosts: list[SimHost]) -> None:
    host = next(h for h in hosts if h.mig)
    fams = _families(render_dcgm(host, T0 + 10))
    used = fams["DCGM_FI_DEV_FB_USED"].samples
    profiles = {(s.labels["gpu"], s.labels.get("GPU_I_PROFILE"), s.labels.get("GPU_I_ID")) for s in used}
    assert ("0", "3g.40gb", "1") in profiles and ("1", "1g.10gb", "13") in profiles
    util_gpus = {s.labels["gpu"] for s in fams["DCGM_FI_DEV_GPU_UTIL"].samples}
    assert "0" not in util_gpus and "1" not in util_gpus and len(util_gpus) == host.gpus - 2
    power_gpus = [s.labels["gpu"] for s in fams["DCGM_FI_DEV_POWER_USAGE"].samples]
    assert len(power_gpus) == host.gpus  # device-level fields stay per physical GPU
    for s in used:
        if "GPU_I_ID" in s.labels:
            free = next(f.value for f in fams["DCGM_FI_DEV_FB_FREE"].samples if f.labels == s.labels)
            assert s.value + free in (40192, 19968, 9856)


def test_values_move_over_time(hosts: list[SimHost]) -> None:
    host = _by_kind(hosts, "batch")
    a = _values(render_dcgm(host, T0), "DCGM_FI_DEV_POWER_USAGE")
    b = _values(render_dcgm(host, T0 + 120), "DCGM_FI_DEV_POWER_USAGE")
    assert a.keys() == b.keys()
    assert all(abs(a[k] - b[k]) > 10 for k in a)


def test_busy_idle_and_alternating_gpus_differ(hosts: list[SimHost]) -> None:
    busy, idle, batch = (_by_kind(hosts, k) for k in ("training", "idle", "batch"))
    for t in range(0, 600, 37):
        for g in busy.devices:
            v = gpu_values(busy, g, T0 + t)
            assert 70 <= v["DCGM_FI_DEV_GPU_UTIL"] <= 100
            assert v["DCGM_FI_DEV_FB_USED"] > 0.6 * busy.spec.memory_mib
            assert v["DCGM_FI_DEV_POWER_USAGE"] > busy.spec.idle_power_w + 0.6 * (
                busy.spec.max_power_w - busy.spec.idle_power_w
            )
        for g in idle.devices:
            v = gpu_values(idle, g, T0 + t)
            assert 0 <= v["DCGM_FI_DEV_GPU_UTIL"] <= 5
            assert v["DCGM_FI_DEV_XID_ERRORS"] == 0 or g.xid_prone
    utils = [gpu_values(batch, batch.devices[0], T0 + t)["DCGM_FI_DEV_GPU_UTIL"] for t in range(0, 480, 10)]
    assert max(utils) >= 80 and min(utils) <= 10
    hot = gpu_values(busy, busy.devices[0], T0)["DCGM_FI_DEV_GPU_TEMP"]
    cold = gpu_values(idle, idle.devices[0], T0)["DCGM_FI_DEV_GPU_TEMP"]
    assert hot > cold + 20


def test_mixed_host_has_busy_and_idle_gpus(hosts: list[SimHost]) -> None:
    host = next(h for h in hosts if h.kind == "mixed" and h.gpus >= 4)
    patterns = {g.pattern for g in host.devices}
    assert patterns == {Pattern.BUSY, Pattern.IDLE}


def test_xid_is_mostly_zero(hosts: list[SimHost]) -> None:
    nonzero = {
        (h.name, g.index)
        for h in hosts
        for g in h.devices
        for t in range(0, 1800, 300)
        if gpu_values(h, g, T0 + t)["DCGM_FI_DEV_XID_ERRORS"] != 0
    }
    assert len(nonzero) == 1


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 30 * 86400), st.floats(0.001, 3600), st.integers(0, 24))
def test_energy_is_monotonic_and_tracks_power(start: float, delta: float, host_index: int) -> None:
    host = build_fleet(seed=7, epoch=T0)[host_index]
    g = host.devices[-1]
    e1 = gpu_values(host, g, T0 + start)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    e2 = gpu_values(host, g, T0 + start + delta)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    assert e2 >= e1
    joules = (e2 - e1) / 1000.0
    assert host.spec.idle_power_w * delta - 1 <= joules <= host.spec.max_power_w * delta + 1


def test_energy_rate_matches_power_gauge(hosts: list[SimHost]) -> None:
    host = _by_kind(hosts, "training")
    g = host.devices[0]
    e1 = gpu_values(host, g, T0)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    e2 = gpu_values(host, g, T0 + 2)["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]
    power = gpu_values(host, g, T0 + 1)["DCGM_FI_DEV_POWER_USAGE"]
    assert (e2 - e1) / 2000.0 == pytest.approx(power, abs=5)


# -- node payload ---------------------------------------------------------------------------------
def test_node_payload_shape(hosts: list[SimHost]) -> None:
    fixture = _families(_fixture("node_exporter/node_exporter_1.5.prom"))
    for host in hosts:
        fams = _families(render_node(host, T0 + 15))
        n = sum(len(f.samples) for f in fams.values())
        assert 150 <= n <= 400, (host.name, n)
    cpu = fams["node_cpu_seconds"].samples
    assert len(cpu) == 8 * host.cpus and {s.labels["mode"] for s in cpu} >= {"idle", "user", "system"}
    for name in (
        "node_load1",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_boot_time_seconds",
        "node_network_receive_bytes",
        "node_uname_info",
    ):
        assert name in fams, name
        assert fams[name].type == fixture[name].type
    assert fams["node_uname_info"].samples[0].labels["nodename"] == host.name
    assert fams["node_boot_time_seconds"].samples[0].value == host.boot_time


def test_node_counters_only_grow_and_follow_load(hosts: list[SimHost]) -> None:
    busy, idle = _by_kind(hosts, "training"), _by_kind(hosts, "idle")
    for host in (busy, idle):
        a = _families(render_node(host, T0 + 100))
        b = _families(render_node(host, T0 + 160))
        for name, fam in a.items():
            if fam.type != "counter":
                continue
            before = {tuple(s.labels.items()): s.value for s in fam.samples}
            for s in b[name].samples:
                assert s.value >= before[tuple(s.labels.items())], name

    def idle_share(host: SimHost) -> float:
        a = _values(render_node(host, T0 + 100), "node_cpu_seconds_total")
        b = _values(render_node(host, T0 + 160), "node_cpu_seconds_total")
        idle_d = sum(b[k] - a[k] for k in a if ("mode", "idle") in k)
        return idle_d / (60.0 * host.cpus)

    assert idle_share(busy) < 0.7 < idle_share(idle)


# -- value formatting ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (362.94, "362.94"),
        (27684864.0, "2.7684864e+07"),
        (1.795684985e9, "1.795684985e+09"),
        (1e-05, "1e-05"),
        (-2.5e7, "-2.5e+07"),
        (1e16, "1e+16"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        (999999.0, "999999"),
    ],
)
def test_format_go(value: float, text: str) -> None:
    assert format_go(value) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_go_round_trips(value: float) -> None:
    assert float(format_go(value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_sample_value_round_trips_without_exponent(value: float) -> None:
    text = format_sample_value(value)
    assert "e" not in text and float(text) == value


def test_format_sample_value_specials() -> None:
    assert [format_sample_value(v) for v in (math.nan, math.inf, -math.inf, 96.0, 1e20)] == [
        "NaN",
        "+Inf",
        "-Inf",
        "96",
        "100000000000000000000",
    ]


# -- PromQL parser --------------------------------------------------------------------------------
def test_parse_supported_forms() -> None:
    q = parse_query('DCGM_FI_DEV_GPU_UTIL{Hostname="a", gpu!="1", modelName=~"NVIDIA.*", x!~\'y\',}')
    assert q.metric == "DCGM_FI_DEV_GPU_UTIL" and q.aggregation is None
    assert [(m.label, m.op, m.value) for m in q.matchers][1:] == [
        ("Hostname", "=", "a"),
        ("gpu", "!=", "1"),
        ("modelName", "=~", "NVIDIA.*"),
        ("x", "!~", "y"),
    ]
    agg = parse_query("  avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)  ")
    assert (agg.aggregation, agg.by) == ("avg", ("Hostname", "gpu"))
    assert parse_query("count(up) by (job)").by == ("job",)
    assert parse_query("sum(x)").by == ()
    assert parse_query('{__name__="x"}').metric == "x"
    assert parse_query('x{a="q\\"uote\\n"}').matchers[1].value == 'q"uote\n'


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "no expression"),
        ("rate(x[5m])", "unsupported function"),
        ("sum without (a) (x)", "without"),
        ("x + y", "after the expression"),
        ("x[5m]", "unexpected '[' after"),
        ('{a=""}', "non-empty matcher"),
        ('x{a="\\q"}', "unknown escape"),
        ('x{a=~"("}', "invalid regular expression"),
        ("sum by (a) (x) by (b)", "grouping given twice"),
        ("sum by (a (x)", "expected"),
        ("x{a}", "expected"),
        ("sum()", "expected a metric name"),
        ("sum(", "end of input"),
    ],
)
def test_parse_errors(query: str, message: str) -> None:
    with pytest.raises(PromQLError, match=re.escape(message)) as info:
        parse_query(query)
    assert info.value.prometheus_message().startswith("1:")


def _parse_or_clean_error(text: str) -> None:
    """Either a query with a selector, or a PromQLError with a message and an in-range column."""
    try:
        q = parse_query(text)
    except PromQLError as e:
        assert str(e) and 1 <= e.pos <= len(text) + 1
    else:
        assert q.matchers and not all(m.matches({}) for m in q.matchers)


_PIECES = [*"abc_:{}()[],=!~\"'\\ \n.*5+", "sum", "by", "avg", "without", "x", '"v"', "=~"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(_PIECES), max_size=25).map("".join))
def test_parser_never_crashes_on_structured_garbage(text: str) -> None:
    _parse_or_clean_error(text)


@given(st.text(max_size=60))
def test_parser_never_crashes_on_arbitrary_text(text: str) -> None:
    _parse_or_clean_error(text)


def test_evaluate_aggregations() -> None:
    samples = [
        ({"__name__": "m", "h": "a", "g": "0"}, 1.0),
        ({"__name__": "m", "h": "a", "g": "1"}, 3.0),
        ({"__name__": "m", "h": "b", "g": "0"}, 10.0),
        ({"__name__": "other", "h": "b"}, 99.0),
    ]
    assert evaluate(parse_query("avg by (h) (m)"), samples) == [({"h": "a"}, 2.0), ({"h": "b"}, 10.0)]
    assert evaluate(parse_query("sum(m)"), samples) == [({}, 14.0)]
    assert evaluate(parse_query("max by (g) (m)"), samples) == [({"g": "0"}, 10.0), ({"g": "1"}, 3.0)]
    assert evaluate(parse_query("min by (nope) (m)"), samples) == [({}, 1.0)]
    assert evaluate(parse_query('count by (h) (m{g="0"})'), samples) == [({"h": "a"}, 1.0), ({"h": "b"}, 1.0)]
    assert [m for m, _ in evaluate(parse_query('m{h=~"a|c", g!~"1"}'), samples)] == [samples[0][0]]
    assert evaluate(parse_query("sum(absent)"), samples) == []


def test_parse_time() -> None:
    assert parse_time(None, 5.0) == 5.0
    assert parse_time("1435781451.781", 0) == 1435781451.781
    assert parse_time("2015-07-01T20:10:51.781Z", 0) == pytest.approx(1435781451.781)
    for bad in ("yesterday", "nan", "inf"):
        with pytest.raises(PromQLError, match='invalid parameter "time"'):
            parse_time(bad, 0)


# -- the server -----------------------------------------------------------------------------------
@pytest.fixture
async def fleet() -> AsyncIterator[FleetSimulator]:
    sim = FleetSimulator(seed=7, clock=lambda: T0 + 0.5)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_exporter_routes_serve_the_payloads(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    host = fleet.hosts[3]
    async with session.get(fleet.dcgm_url(host), headers={"Accept-Encoding": "identity"}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "Content-Encoding" not in r.headers
        assert await r.text() == render_dcgm(host, T0)
    async with session.get(fleet.node_url(host.name)) as r:
        assert r.status == 200
        assert await r.text() == render_node(host, T0)
    assert fleet.dcgm_url(host).startswith(f"http://127.0.0.1:{fleet.port}/hosts/")


async def test_gzip_when_accepted(fleet: FleetSimulator, session: aiohttp.ClientSession) -> None:
    host = fleet.hosts[0]
    async with session.get(
        fleet.dcgm_url(host), headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    ) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        raw = await r.read()
    assert gzip.decompress(raw).decode() == render_dcgm(host, T0)
    async with session.get(fleet.dcgm_url(host), headers={"Accept-Encoding": "gzip"}) as r:
        assert await r.text() == render_dcgm(host, T0)  # served from the per-second cache


async def test_unknown_hosts_and_kinds_are_404(fleet: FleetSimulator, session: aiohttp.ClientSession) -> None:
    for path in ("/hosts/nope/dcgm/metrics", f"/hosts/{fleet.hosts[0].name}/gpu/metrics", "/nothing"):
        async with session.get(fleet.base_url + path) as r:
            assert r.status == 404, path


async def test_simulated_outage(fleet: FleetSimulator, session: aiohttp.ClientSession) -> None:
    host = fleet.hosts[1]
    fleet.set_down(host, "node")
    async with session.get(fleet.node_url(host)) as r:
        assert r.status == 503
    async with session.get(fleet.dcgm_url(host)) as r:
        assert r.status == 200
    fleet.set_down(host.name, "node", down=False)
    async with session.get(fleet.node_url(host)) as r:
        assert r.status == 200


async def test_index_lists_hosts_and_prometheus(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    async with session.get(fleet.base_url + "/") as r:
        doc = await r.json()
    assert len(doc["hosts"]) == len(fleet.hosts)
    assert doc["hosts"][0]["dcgm_url"] == fleet.dcgm_url(fleet.hosts[0])
    assert set(doc["prometheus"]) == set(fleet.providers)


async def _query(
    session: aiohttp.ClientSession, url: str, query: str | None, **extra: str
) -> tuple[int, dict[str, object]]:
    params = dict(extra)
    if query is not None:
        params["query"] = query
    async with session.get(url + "/api/v1/query", params=params) as r:
        return r.status, await r.json()


async def test_promql_avg_by_host_matches_payloads(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    t = T0 - 30.25
    status, body = await _query(
        session, fleet.prometheus_url("lambda"), "avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL)", time=str(t)
    )
    assert status == 200 and body["status"] == "success"
    data = body["data"]
    assert data["resultType"] == "vector"  # type: ignore[index]
    got = {r["metric"]["Hostname"]: r["value"] for r in data["result"]}  # type: ignore[index]
    expected = {}
    for h in fleet.hosts_of("lambda"):
        fam = next(f for f in dcgm_families(h, t) if f.name == "DCGM_FI_DEV_GPU_UTIL")
        expected[h.name] = [t, format_sample_value(sum(v for _, v in fam.samples) / len(fam.samples))]
    assert got == expected


async def test_promql_selector_sum_and_customer_scope(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    host = fleet.hosts_of("vultr", "globex")[0]
    status, body = await _query(
        session, fleet.prometheus_url("vultr"), f'DCGM_FI_DEV_POWER_USAGE{{Hostname="{host.name}",gpu="0"}}'
    )
    result = body["data"]["result"]  # type: ignore[index]
    assert status == 200 and len(result) == 1
    metric = result[0]["metric"]
    assert metric["__name__"] == "DCGM_FI_DEV_POWER_USAGE" and metric["job"] == "dcgm-exporter"
    assert metric["instance"] == f"{host.name}:9400" and metric["UUID"] == host.devices[0].uuid
    assert result[0]["value"][0] == T0 + 0.5

    _, scoped = await _query(
        session, fleet.prometheus_url("vultr", "globex"), "count by (Hostname) (node_load1)"
    )
    # node metrics carry no Hostname label: one group without labels
    assert scoped["data"]["result"] == [  # type: ignore[index]
        {"metric": {}, "value": [T0 + 0.5, str(len(fleet.hosts_of("vultr", "globex")))]}
    ]
    _, scoped = await _query(
        session, fleet.prometheus_url("vultr", "globex"), "count by (instance) (node_load1)"
    )
    instances = {r["metric"]["instance"] for r in scoped["data"]["result"]}  # type: ignore[index]
    assert instances == {f"{h.name}:9100" for h in fleet.hosts_of("vultr", "globex")}
    _, total = await _query(session, fleet.prometheus_url("vultr"), "sum(DCGM_FI_DEV_FB_USED)")
    assert len(total["data"]["result"]) == 1 and total["data"]["result"][0]["metric"] == {}  # type: ignore[index]


async def test_promql_post_form(fleet: FleetSimulator, session: aiohttp.ClientSession) -> None:
    url = fleet.prometheus_url("onprem") + "/api/v1/query"
    async with session.post(url, data={"query": "max by (modelName) (DCGM_FI_DEV_GPU_TEMP)"}) as r:
        body = await r.json()
    assert r.status == 200
    models = {x["metric"]["modelName"] for x in body["data"]["result"]}
    assert models == {h.gpu_model for h in fleet.hosts_of("onprem")}


@pytest.mark.parametrize(
    ("query", "extra", "status", "error_type", "fragment"),
    [
        ("rate(DCGM_FI_DEV_GPU_UTIL[5m])", {}, 400, "bad_data", 'invalid parameter "query": 1:'),
        ("DCGM_FI_DEV_GPU_UTIL / 2", {}, 400, "bad_data", "parse error"),
        (None, {}, 400, "bad_data", "no expression found"),
        ("up", {"time": "soon"}, 400, "bad_data", 'invalid parameter "time"'),
    ],
)
async def test_promql_errors_use_prometheus_envelope(
    fleet: FleetSimulator,
    session: aiohttp.ClientSession,
    query: str | None,
    extra: dict[str, str],
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    got, body = await _query(session, fleet.prometheus_url("runpod"), query, **extra)
    assert got == status
    assert body["status"] == "error" and body["errorType"] == error_type
    assert fragment in str(body["error"])


async def test_promql_unknown_provider_or_customer(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    for path in ("/prom/aws", "/prom/vultr/initech"):
        status, body = await _query(session, fleet.base_url + path, "up")
        assert status == 404 and body["status"] == "error"


def test_addresses_and_arguments_are_checked() -> None:
    sim = FleetSimulator(seed=1, hosts_per_provider=1, providers=["vultr", "lambda"])
    with pytest.raises(RuntimeError, match="not started"):
        sim.dcgm_url(sim.hosts[0])
    sim.port = 1234
    with pytest.raises(KeyError, match="provider"):
        sim.prometheus_url("aws")
    with pytest.raises(KeyError, match="host"):
        sim.node_url("ghost")
    with pytest.raises(ValueError, match="listen_host"):
        FleetSimulator(listen_host="0.0.0.0")


async def test_start_twice_fails_and_stop_is_idempotent() -> None:
    sim = FleetSimulator(seed=2, hosts_per_provider=1)
    async with sim:
        assert sim.port > 0
        with pytest.raises(RuntimeError, match="already started"):
            await sim.start()
    await sim.stop()


async def test_start_on_a_busy_port_fails_cleanly(fleet: FleetSimulator) -> None:
    other = FleetSimulator(seed=2, hosts_per_provider=1, port=fleet.port)
    with pytest.raises(OSError):
        await other.start()
    await other.stop()


async def test_cache_rerenders_when_the_second_changes() -> None:
    now = [T0]
    sim = FleetSimulator(seed=3, hosts_per_provider=1, clock=lambda: now[0])
    host = sim.hosts[0]
    first = sim.payload(host, "dcgm", False)
    assert sim.payload(host, "dcgm", False) is first
    now[0] += 90
    assert sim.payload(host, "dcgm", False) == render_dcgm(host, T0 + 90).encode() != first


# -- demo config ----------------------------------------------------------------------------------
async def test_demo_config_shape(fleet: FleetSimulator, tmp_path: Path) -> None:
    doc = yaml.safe_load(demo_config_yaml(fleet, tmp_path, listen="127.0.0.1:19464", interval="2s"))
    assert doc == demo_config(fleet, tmp_path, listen="127.0.0.1:19464", interval="2s")
    assert doc["sink"] == {
        "kind": "embedded",
        "batch": {"max_age": "1s"},
        "embedded": {"path": str(tmp_path / "chdb")},
    }
    assert doc["collector"] == {
        "interval": "2s",
        "scrape_timeout": "1500ms",
        "state_dir": str(tmp_path / "state"),
        "listen": "127.0.0.1:19464",
    }
    assert set(doc["providers"]) == set(fleet.providers)
    assert doc["providers"]["onprem"]["category"] == "on-prem"
    assert len(doc["accounts"]) == len(fleet.providers) * len(fleet.customers)
    acct = next(a for a in doc["accounts"] if a["id"] == "globex-coreweave")
    hosts = fleet.hosts_of("coreweave", "globex")
    assert len(acct["exporters"]) == 2 * len(hosts)
    assert {e["url"] for e in acct["exporters"]} == {fleet.dcgm_url(h) for h in hosts} | {
        fleet.node_url(h) for h in hosts
    }
    assert acct["prometheus"]["url"] == fleet.prometheus_url("coreweave", "globex")
    assert [(q["name"], q["expr"]) for q in acct["prometheus"]["queries"]] == list(DEMO_QUERIES)


async def test_demo_config_loads_without_problems(fleet: FleetSimulator, tmp_path: Path) -> None:
    loader = pytest.importorskip("multicloud_collector.config.loader")
    config = loader.load_config_text(demo_config_yaml(fleet, tmp_path, listen="127.0.0.1:19464"))
    assert len(config.accounts) == len(fleet.providers) * len(fleet.customers)
    assert config.sink.embedded.path == str(tmp_path / "chdb")
    assert config.collector.interval == 2.0
    exporters = [e for a in config.accounts for e in a.exporters]
    assert len(exporters) == 2 * len(fleet.hosts)
    assert {e.kind for e in exporters} == {"dcgm", "node"}


async def test_demo_queries_answer_on_the_simulated_api(
    fleet: FleetSimulator, session: aiohttp.ClientSession
) -> None:
    for _, expr in DEMO_QUERIES:
        status, body = await _query(session, fleet.prometheus_url("coreweave", "acme"), expr)
        assert status == 200 and body["data"]["result"], expr  # type: ignore[index]


async def test_demo_config_with_ephemeral_listen_port_loads(fleet: FleetSimulator, tmp_path: Path) -> None:
    loader = pytest.importorskip("multicloud_collector.config.loader")
    config = loader.load_config_text(demo_config_yaml(fleet, tmp_path))
    assert config.collector.listen == "127.0.0.1:0"
