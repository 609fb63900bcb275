"""Loading: file handling, YAML errors, defaults, typed values and the public API."""

from __future__ import annotations

from pathlib import Path

import pytest

from multicloud_collector.config import (
    AccountConfig,
    ClickHouseConfig,
    CollectorConfig,
    Config,
    ConfigError,
    ConfigFileNotFoundError,
    ExporterConfig,
    Problem,
    ProviderSpec,
    exporter_interval,
    exporter_timeout,
    format_problems,
    load_config,
    load_config_text,
    resolve_config_path,
)
from multicloud_collector.model import ScrapeLimits
from multicloud_collector.secrets import Secret

FIXTURES = Path(__file__).parent / "fixtures" / "configs"
FULL_ENV = {
    "CLICKHOUSE_PASSWORD": "ch-pw-1",
    "PROM_TOKEN": "tok-1",
    "EXPORTER_KEY": "ek-1",
    "MYCLOUD_KEY": "mk-1",
}


def errors_of(text: str, env: dict[str, str] | None = None, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, env=env or {}, **kw)  # type: ignore[arg-type]
    return [str(p) for p in exc.value.problems]


def test_resolve_config_path_prefers_cli_then_env_then_default() -> None:
    assert resolve_config_path("a.yaml", {"MCC_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_config_path(None, {"MCC_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_config_path(None, {"MCC_CONFIG": "  "}) == Path("providers.yaml")
    assert resolve_config_path(None, {}) == Path("providers.yaml")
    assert resolve_config_path("", {}) == Path("providers.yaml")


def test_load_config_uses_mcc_config_when_no_path(tmp_path: Path) -> None:
    cfg = tmp_path / "x.yaml"
    cfg.write_text((FIXTURES / "minimal.yaml").read_text())
    config = load_config(env={"MCC_CONFIG": str(cfg)})
    assert config.source_path == cfg
    assert [a.id for a in config.accounts] == ["lab"]


def test_missing_file_is_config_error_and_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigFileNotFoundError) as exc:
        load_config(path, env={})
    assert isinstance(exc.value, FileNotFoundError)
    assert str(exc.value) == f"{path}: config file not found (use -c FILE or set MCC_CONFIG)"


def test_unreadable_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path, env={})  # a directory
    assert str(exc.value).startswith(f"{tmp_path}: cannot read config file")


def test_yaml_syntax_error_gives_file_line_and_column() -> None:
    path = FIXTURES / "syntax_error.yaml"
    with pytest.raises(ConfigError) as exc:
        load_config(path, env={})
    assert [str(p) for p in exc.value.problems] == [f"{path}:3:20: mapping values are not allowed here"]


def test_yaml_syntax_error_in_text_uses_source_name() -> None:
    assert errors_of("a: [1, 2", source_name="providers.yaml") == [
        "providers.yaml:1:9: expected ',' or ']', but got '<stream end>'"
    ]


def test_duplicate_yaml_key_is_an_error_with_first_line() -> None:
    assert errors_of("collector:\n  interval: 5s\n  interval: 6s\n") == [
        "collector.interval: duplicate key (first at line 2)"
    ]


def test_merge_keys_may_be_overridden_without_duplicate_error() -> None:
    text = """
collector: &c {interval: 20s, scrape_timeout: 5s}
providers:
  onprem: {category: on-prem}
accounts:
  - &base {id: a, customer: c, provider: onprem, interval: 30s, exporters: [{url: "http://h:1/m"}]}
  - {<<: *base, id: b, exporters: [{url: "http://h:2/m"}]}
"""
    config = load_config_text(text, env={})
    assert [(a.id, a.interval) for a in config.accounts] == [("a", 30.0), ("b", 30.0)]


def test_non_string_yaml_keys_are_reported() -> None:
    assert errors_of("? [a, b]\n: 1\n") == ["<root>: unsupported mapping key ['a', 'b']"]


def test_top_level_must_be_mapping() -> None:
    assert errors_of("- a\n- b\n") == ["<config>: top level must be a mapping, got list"]


def test_empty_text_gives_defaults() -> None:
    config = load_config_text("", env={})
    assert config == Config()
    assert config.collector == CollectorConfig()
    assert config.collector.limits == ScrapeLimits()
    assert config.sink.kind == "embedded" and config.sink.clickhouse is None
    assert config.sink.batch.max_bytes == 16 * 2**20 and config.sink.batch.max_buffer_bytes == 256 * 2**20
    assert config.sink.embedded.path == "./mcc-data/chdb" and config.sink.embedded.database == "mcc"
    assert config.collector.retries.max_tries == 3 and config.collector.shard.count == 1


def test_minimal_fixture() -> None:
    config = load_config(FIXTURES / "minimal.yaml", env={})
    (acct,) = config.accounts
    assert acct.exporters == (ExporterConfig(url="http://127.0.0.1:9100/metrics", kind="node"),)
    assert config.enabled_accounts() == (acct,)
    assert config.providers["onprem"].category == "on-prem"
    assert config.warnings == ()


def test_full_fixture_reads_every_key() -> None:
    config = load_config(FIXTURES / "full.yaml", env=FULL_ENV)
    c = config.collector
    assert (c.interval, c.scrape_timeout, c.max_concurrency, c.listen) == (30.0, 20.0, 8, "[::1]:9555")
    assert (c.state_dir, c.shutdown_grace) == ("/var/lib/mcc/state", 3.0)
    assert (c.retries.max_tries, c.retries.base_delay, c.retries.max_delay) == (5, 0.1, 2.0)
    assert c.limits == ScrapeLimits(4 * 2**20, 1000, 10, 100, 200, 8 * 1024)
    assert (c.log.level, c.log.format) == ("debug", "json")
    assert (c.shard.index, c.shard.count) == (1, 3)
    s = config.sink
    assert s.kind == "clickhouse"
    assert (s.batch.max_rows, s.batch.max_bytes, s.batch.max_age, s.batch.max_buffer_bytes) == (
        1000,
        2**20,
        2.0,
        8 * 2**20,
    )
    assert (s.embedded.path, s.embedded.database) == ("/tmp/chdb", "other")
    assert s.clickhouse == ClickHouseConfig(
        url="https://ch.internal:8443",
        database="metrics",
        user="writer",
        password=Secret("ch-pw-1"),
        ca_file="/etc/ssl/ch.pem",
        verify=False,
        timeout=60.0,
        compression="gzip",
        cluster="main",
    )
    assert config.providers["mycloud"] == ProviderSpec(
        name="mycloud",
        display_name="My Cloud",
        category="gpu-cloud",
        capabilities=("prometheus", "dcgm", "inventory_api"),
        api_base_url="https://api.mycloud.test/v1",
        api_auth="bearer",
        exporter_ports={"node": 9100, "dcgm": 9400},
        requirements=("dcgm-exporter on each GPU host",),
        docs_url="https://docs.mycloud.test/",
        adapter="mycloud",
        enabled=True,
    )
    (a,) = config.accounts
    assert (a.id, a.customer, a.interval, a.scrape_timeout, a.labels) == (
        "acct-1",
        "acme",
        60.0,
        45.0,
        {"team": "ml", "env": "prod"},
    )
    assert a.prometheus is not None
    assert a.prometheus.bearer_token == Secret("tok-1")
    assert a.prometheus.headers == {"X-Scope-OrgID": "acme", "Authorization": Secret("Bearer tok-1")}
    assert a.prometheus.scrape_timeout == 5.0
    assert [(q.name, q.expr) for q in a.prometheus.queries] == [("gpu_util", "avg(DCGM_FI_DEV_GPU_UTIL)")]
    (e,) = a.exporters
    assert (e.url, e.kind, e.name, e.interval, e.scrape_timeout, e.enabled) == (
        "http://10.0.0.5:9400/metrics",
        "dcgm",
        "gpu-box-1",
        10.0,
        5.0,
        False,
    )
    assert e.labels == {"rack": "r1"}
    assert e.headers == {"X-Api-Key": Secret("ek-1"), "Accept": "text/plain"}
    assert e.bearer_token == Secret("tok-1")
    assert a.api == {
        "api_key": Secret("mk-1"),
        "region": "eu-1",
        "nested": {"secret": Secret("mk-1"), "page_size": 50},
    }
    assert config.warnings == ()


def test_config_is_frozen() -> None:
    config = load_config(FIXTURES / "minimal.yaml", env={})
    with pytest.raises(AttributeError):
        config.collector.interval = 1.0  # type: ignore[misc]


def test_enabled_accounts_requires_account_and_provider_enabled() -> None:
    text = """
providers:
  p1: {category: general}
  p2: {category: general, enabled: false}
accounts:
  - {id: a, customer: c, provider: p1, exporters: [{url: "http://h:1/m"}]}
  - {id: b, customer: c, provider: p1, enabled: false, exporters: [{url: "http://h:1/m"}]}
  - {id: c, customer: c, provider: p2, exporters: [{url: "http://h:1/m"}]}
"""
    config = load_config_text(text, env={})
    assert [a.id for a in config.enabled_accounts()] == ["a"]
    assert config.account("b") is not None and config.account("zz") is None


def test_effective_interval_and_timeout() -> None:
    collector = CollectorConfig(interval=15.0, scrape_timeout=10.0)
    plain = AccountConfig(id="a", customer="c", provider="p")
    assert plain.effective_interval(collector) == 15.0
    assert plain.effective_timeout(collector) == 10.0
    fast = AccountConfig(id="a", customer="c", provider="p", interval=5.0)
    assert fast.effective_timeout(collector) == pytest.approx(4.0)  # 10s >= 5s -> 0.8 x 5s
    own = AccountConfig(id="a", customer="c", provider="p", interval=60.0, scrape_timeout=30.0)
    assert own.effective_timeout(collector) == 30.0
    equal = AccountConfig(id="a", customer="c", provider="p", interval=10.0)
    assert equal.effective_timeout(collector) == pytest.approx(8.0)


def test_exporter_interval_and_timeout_inherit() -> None:
    collector = CollectorConfig()
    account = AccountConfig(id="a", customer="c", provider="p", interval=60.0, scrape_timeout=20.0)
    inherit = ExporterConfig(url="http://h:1/m")
    assert exporter_interval(inherit, account, collector) == 60.0
    assert exporter_timeout(inherit, account, collector) == 20.0
    own = ExporterConfig(url="http://h:1/m", interval=5.0)
    assert exporter_timeout(own, account, collector) == pytest.approx(4.0)
    explicit = ExporterConfig(url="http://h:1/m", interval=5.0, scrape_timeout=2.0)
    assert exporter_timeout(explicit, account, collector) == 2.0
    bare = AccountConfig(id="a", customer="c", provider="p")
    assert exporter_timeout(inherit, bare, collector) == 10.0


def test_problem_str_and_format_problems() -> None:
    err = Problem("collector.interval", "bad", line=3)
    warn = Problem("accounts[0]", "hmm", "warning")
    assert str(err) == "collector.interval: bad"
    assert format_problems([err, warn]) == "collector.interval: bad (line 3)\nwarning: accounts[0]: hmm"
    exc = ConfigError([err, Problem("x", "y")], [warn])
    assert str(exc) == "collector.interval: bad (line 3)\nx: y"
    assert exc.warnings == [warn]


def test_all_problems_are_reported_at_once() -> None:
    text = """
collector: {interval: nope, max_concurrency: 0, listen: "no-port"}
accounts:
  - {id: a, customer: c, provider: p, exporters: [{url: "ftp://x"}]}
"""
    problems = errors_of(text)
    assert len(problems) == 4, problems


def test_errors_are_sorted_by_line() -> None:
    text = "accounts:\n  - {id: a, provider: p, bogus: 1}\ncollector: {bogus: 1}\n"
    problems = errors_of(text)
    assert problems == ["accounts[0].bogus: unknown key", "collector.bogus: unknown key"]
