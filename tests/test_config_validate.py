"""Validation messages: one per problem, dotted path first, did-you-mean where it helps."""

from __future__ import annotations

import pytest

from multicloud_collector.config import ConfigError, ProviderSpec, load_config_text
from multicloud_collector.config.build_core import is_loopback_listen, listen_problem, provider_from_mapping
from multicloud_collector.config.fields import display_url, url_problem

PROV = "providers:\n  vultr: {category: gpu-cloud}\n  onprem: {category: on-prem}\n"


def problems(text: str, known_kinds: set[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, env={}, known_kinds=known_kinds)
    return [str(p) for p in exc.value.problems]


def acct(extra: str = "", exporters: str = '[{url: "http://h:9100/m", kind: node}]') -> str:
    return PROV + f"accounts:\n  - {{id: a, customer: c, provider: vultr, exporters: {exporters}{extra}}}\n"


def warnings(text: str) -> list[str]:
    return [str(w) for w in load_config_text(text, env={}).warnings]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("collector: {intervall: 15s}", "collector.intervall: unknown key (did you mean 'interval'?)"),
        ("colector: {}", "colector: unknown key (did you mean 'collector'?)"),
        ("collector: {zzz: 1}", "collector.zzz: unknown key"),
        ("sink: {batch: {max_row: 1}}", "sink.batch.max_row: unknown key (did you mean 'max_rows'?)"),
        (
            "collector: {limits: {body_sise: 1}}",
            "collector.limits.body_sise: unknown key (did you mean 'body_size'?)",
        ),
        (
            PROV.replace("gpu-cloud}", "gpu-cloud, docs: x}"),
            "providers.vultr.docs: unknown key (did you mean 'docs_url'?)",
        ),
    ],
)
def test_unknown_keys_with_did_you_mean(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_unknown_keys_in_accounts_exporters_and_queries() -> None:
    text = acct(
        ", promethus: {}, prometheus: {url: 'http://p:1', queries: [{name: q, expr: up, exp: 1}]}",
        exporters='[{url: "http://h:1/m", knd: node}]',
    )
    assert problems(text) == [
        "accounts[0].promethus: unknown key (did you mean 'prometheus'?)",
        "accounts[0].exporters[0].knd: unknown key (did you mean 'kind'?)",
        "accounts[0].prometheus.queries[0].exp: unknown key (did you mean 'expr'?)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "collector: {interval: fast}",
            "collector.interval: invalid duration 'fast': use a number of seconds",
        ),
        ("collector: {interval: 0s}", "collector.interval: must be greater than 0, got '0s'"),
        ("collector: {max_concurrency: 0}", "collector.max_concurrency: must be >= 1, got 0"),
        (
            "collector: {max_concurrency: many}",
            "collector.max_concurrency: expected an integer, got string 'many'",
        ),
        (
            "collector: {max_concurrency: true}",
            "collector.max_concurrency: expected an integer, got boolean True",
        ),
        (
            "collector: {limits: {body_size: 16XB}}",
            "collector.limits.body_size: invalid size '16XB': unknown unit",
        ),
        ("collector: {log: {level: loud}}", "collector.log.level: must be one of debug, info"),
        (
            "collector: {log: {format: jsn}}",
            "collector.log.format: must be one of auto, json, console, got 'jsn' (did you mean 'json'?)",
        ),
        (
            "collector: {shard: {index: 2, count: 2}}",
            "collector.shard.index: must be less than count (2), got 2",
        ),
        (
            "collector: {retries: {base_delay: 2s, max_delay: 1s}}",
            "collector.retries.max_delay: must be >= base_delay",
        ),
        ("collector: {state_dir: [1]}", "collector.state_dir: expected a string, got list"),
        ("collector: 5", "collector: expected a mapping, got integer"),
        ("sink: {kind: postgres}", "sink.kind: must be one of embedded, clickhouse, got 'postgres'"),
        (
            "sink: {batch: {max_bytes: 2MiB, max_buffer_bytes: 1MiB}}",
            "sink.batch.max_buffer_bytes: must be >= max_bytes",
        ),
        ("sink: {kind: clickhouse}", "sink.clickhouse.url: is required when sink.kind is clickhouse"),
        ("sink: {kind: clickhouse, clickhouse: {database: x}}", "sink.clickhouse.url: is required"),
        (
            "sink: {clickhouse: {url: 'tcp://ch:9000'}}",
            "sink.clickhouse.url: not a valid http(s) URL: 'tcp://ch:9000' (scheme must be http or https)",
        ),
        (
            "sink: {clickhouse: {url: 'http://ch:8123', compression: lz4}}",
            "sink.clickhouse.compression: must be one of none, gzip, got 'lz4'",
        ),
        (
            "sink: {clickhouse: {url: 'http://ch:8123', verify: maybe}}",
            "sink.clickhouse.verify: expected true or false, got string 'maybe'",
        ),
        (
            "sink: {clickhouse: {url: 'http://ch:8123', password: [1]}}",
            "sink.clickhouse.password: expected a string, got list",
        ),
        ("sink: {clickhouse: 3}", "sink.clickhouse: expected a mapping, got integer"),
    ],
)
def test_collector_and_sink_values(text: str, expected: str) -> None:
    (got,) = problems(text)
    assert got.startswith(expected), got


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ("localhost", "expected host:port"),
        (":9464", "expected host:port"),
        ("127.0.0.1:70000", "port must be 0-65535"),
        ("127.0.0.1:http", "port must be 0-65535"),
        ("::1:9464", "put an IPv6 host in brackets"),
        ("[zz]:9464", "invalid IPv6 address"),
    ],
)
def test_listen_address(listen: str, why: str) -> None:
    assert problems(f"collector: {{listen: '{listen}'}}") == [
        f"collector.listen: {listen_problem(listen)}, got {listen!r}"
    ]
    assert why in (listen_problem(listen) or "")


def test_listen_ok_and_loopback() -> None:
    assert listen_problem("[::1]:9464") is None and is_loopback_listen("[::1]:9464")
    assert listen_problem("127.0.0.1:0") is None
    assert is_loopback_listen("localhost:1") and is_loopback_listen("127.0.0.5:1")
    assert not is_loopback_listen("0.0.0.0:1") and not is_loopback_listen("myhost:1")
    assert warnings("collector: {listen: '0.0.0.0:9464'}") == [
        "collector.listen: 0.0.0.0:9464 is reachable from other hosts; the query API has no authentication"
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://h/m", "scheme must be http or https"),
        ("http:///metrics", "host is missing"),
        ("h:9100/metrics", "scheme must be http or https"),
        ("http://h:0/m", "port must be 1-65535"),
        ("http://h:65536/m", "port must be 1-65535"),
        ("http://h:abc/m", "port must be 1-65535"),
        ("http://h:1/m x", "contains whitespace"),
    ],
)
def test_exporter_url(url: str, why: str) -> None:
    (got,) = problems(acct(exporters=f'[{{url: "{url}"}}]'))
    assert got.startswith("accounts[0].exporters[0].url: not a valid http(s) URL: ")
    assert got.endswith(f"({why})")
    assert url_problem(url) == why


def test_url_problem_accepts_valid() -> None:
    assert url_problem("https://h.example:443/metrics?x=1") is None
    assert url_problem("http://[::1]:9100/metrics") is None


def test_invalid_url_message_hides_userinfo_and_query() -> None:
    (got,) = problems(acct(exporters='[{url: "ftp://user:pw-canary@h:1/m?token=tk-canary"}]'))
    assert "pw-canary" not in got and "tk-canary" not in got
    assert display_url("http://u:p@h:99999/m?x=1") == "http://h:99999/m?x=***"


def test_account_problems() -> None:
    text = PROV + (
        "accounts:\n"
        "  - {id: a, customer: c, provider: vultur}\n"
        "  - {id: a, customer: c, provider: onprem, exporters: [{url: 'http://h:1/m'}, {url: 'http://h:1/m'}]}\n"
        "  - {customer: c}\n"
        "  - 5\n"
        "  - {id: 'bad id', customer: c, provider: onprem}\n"
    )
    assert problems(text) == [
        "accounts[0].provider: unknown provider 'vultur' (did you mean 'vultr'?)",
        "accounts[1].id: duplicate account id 'a' (also accounts[0])",
        "accounts[1].exporters[1].url: duplicate exporter URL 'http://h:1/m'"
        " (also accounts[1].exporters[0].url)",
        "accounts[2].id: is required",
        "accounts[2].provider: is required",
        "accounts[3]: expected a mapping, got integer",
        "accounts[4].id: invalid account id 'bad id' (use letters, digits, '.', '_', '-', ':')",
    ]


def test_accounts_and_parts_of_wrong_type() -> None:
    assert problems("accounts: {a: 1}") == ["accounts: expected a list, got mapping"]
    text = acct(", api: [1], labels: [x], prometheus: 3", exporters="[5]")
    assert problems(text) == [
        "accounts[0].exporters[0]: expected a mapping with at least 'url', got integer",
        "accounts[0].api: expected a mapping, got list",
        "accounts[0].labels: expected a mapping, got list",
        "accounts[0].prometheus: expected a mapping, got integer",
    ]


def test_labels_and_headers_values() -> None:
    text = acct(
        ", labels: {ok: 1, 'bad-name': x, nested: {a: 1}}",
        exporters='[{url: "http://h:1/m", headers: {A: [1], B: 2}}]',
    )
    assert problems(text) == [
        "accounts[0].exporters[0].headers.A: expected a string, got list",
        "accounts[0].labels.nested: expected a string, got mapping",
        "accounts[0].labels.bad-name: invalid label name (use letters, digits and '_')",
    ]
    assert problems(acct(exporters='[{url: "http://h:1/m", headers: [1]}]')) == [
        "accounts[0].exporters[0].headers: expected a mapping, got list"
    ]


def test_unknown_exporter_kind_and_plugin_kinds() -> None:
    text = acct(exporters='[{url: "http://h:1/m", kind: ipmi}]')
    assert problems(text) == [
        "accounts[0].exporters[0].kind: unknown exporter kind 'ipmi'; known: dcgm, generic, node"
    ]
    config = load_config_text(text, env={}, known_kinds={"node", "dcgm", "generic", "ipmi"})
    assert config.accounts[0].exporters[0].kind == "ipmi"
    assert problems(acct(exporters='[{url: "http://h:1/m", kind: ""}]')) == [
        "accounts[0].exporters[0].kind: must not be empty"
    ]


def test_timeout_must_be_below_interval_when_both_explicit() -> None:
    assert problems("collector: {interval: 5s, scrape_timeout: 5s}") == [
        "collector.scrape_timeout: must be less than interval (5s)"
    ]
    assert problems(acct(", interval: 10s, scrape_timeout: 1m")) == [
        "accounts[0].scrape_timeout: must be less than interval (10s)"
    ]
    text = acct(exporters='[{url: "http://h:1/m", interval: 1s, scrape_timeout: 2s}]')
    assert problems(text) == ["accounts[0].exporters[0].scrape_timeout: must be less than interval (1s)"]
    # only one explicit: clamped instead of rejected
    config = load_config_text("collector: {interval: 5s}", env={})
    assert config.collector.scrape_timeout == 10.0


def test_prometheus_checks() -> None:
    text = acct(", prometheus: {queries: [{name: q, expr: up}, {name: q, expr: x}, 7]}")
    assert problems(text) == [
        "accounts[0].prometheus.queries[1].name: duplicate query name 'q'"
        " (also accounts[0].prometheus.queries[0])",
        "accounts[0].prometheus.queries[2]: expected a mapping with 'name' and 'expr', got integer",
        "accounts[0].prometheus.url: is required",
    ]
    assert warnings(acct(", prometheus: {url: 'http://p:9090'}")) == [
        "accounts[0].prometheus.queries: no queries; nothing will be collected from this Prometheus"
    ]


def test_useful_warnings() -> None:
    text = PROV + "accounts:\n  - {id: a, provider: vultr}\n"
    assert warnings(text) == [
        "accounts[0].customer: not set; using the account id 'a'",
        "accounts[0]: nothing to collect (no prometheus, exporters or api)",
    ]
    assert load_config_text(text, env={}).accounts[0].customer == "a"


def test_provider_problems() -> None:
    text = (
        "providers:\n"
        "  Bad_Name: {category: general}\n"
        "  p1: {category: clouds, capabilities: [prometheus, gpu], api_auth: oauth,"
        " exporter_ports: {node: 0}}\n"
        "  p2: {capabilities: prometheus, api_base_url: 'not a url', exporter_ports: [9100],"
        " requirements: [1]}\n"
        "  p3: 5\n"
    )
    assert problems(text) == [
        "providers.Bad_Name: provider names use lowercase letters, digits, '-' and '_'",
        "providers.p1.capabilities[1]: unknown capability 'gpu'; use one of prometheus, dcgm, inventory_api,"
        " billing_api, pricing_api",
        "providers.p1.exporter_ports.node: must be >= 1, got 0",
        "providers.p1.category: must be one of gpu-cloud, general, container, big-3, on-prem, got 'clouds'"
        " (did you mean 'gpu-cloud'?)",
        "providers.p1.api_auth: must be one of bearer, basic, api-key-header, ovh-signature, oauth2,"
        " kubeconfig, service-account, unix-socket, none, got 'oauth' (did you mean 'oauth2'?)",
        "providers.p2.exporter_ports: expected a mapping of kind to port, got list",
        "providers.p2.category: is required",
        "providers.p2.api_base_url: not a valid http(s) URL: 'not a url' (scheme must be http or https)",
        "providers.p2.requirements: expected a list of strings, got list",
        "providers.p3: expected a mapping, got integer",
    ]
    assert problems("providers: [a]") == ["providers: expected a mapping of provider name to spec, got list"]


def test_provider_defaults_and_capability_warning() -> None:
    config = load_config_text("providers:\n  p: {category: general, capabilities: [billing_api]}\n", env={})
    assert [str(w) for w in config.warnings] == [
        "providers.p: no 'prometheus' capability and no adapter: nothing can be collected"
    ]
    assert problems("providers:\n  q:\n") == ["providers.q.category: is required"]


def test_missing_providers_section_uses_implicit_specs() -> None:
    config = load_config_text(
        "accounts:\n  - {id: a, customer: c, provider: lab, exporters: [{url: 'http://h:1/m'}]}\n"
    )
    assert config.providers == {"lab": ProviderSpec(name="lab")}
    assert [str(w) for w in config.warnings] == [
        "providers: section missing; using default specs for lab (add them to the catalog)"
    ]
    assert [a.id for a in config.enabled_accounts()] == ["a"]


def test_provider_from_mapping() -> None:
    spec = provider_from_mapping("extra", {"category": "gpu-cloud", "capabilities": ["prometheus", "dcgm"]})
    assert (
        spec.name == "extra" and spec.capabilities == ("prometheus", "dcgm") and spec.display_name == "extra"
    )
    with pytest.raises(ConfigError) as exc:
        provider_from_mapping("extra", {"category": "x"})
    assert str(exc.value).startswith("providers.extra.category: must be one of")


def test_validation_messages_carry_lines() -> None:
    text = "collector:\n  interval: 15s\n  intervall: 15s\n"
    with pytest.raises(ConfigError) as exc:
        load_config_text(text, env={})
    assert exc.value.problems[0].line == 3
    assert str(exc.value) == "collector.intervall: unknown key (did you mean 'interval'?) (line 3)"


def test_sub_sections_of_wrong_type() -> None:
    text = "collector: {retries: 1, limits: x, log: [], shard: 2}\nsink: {batch: 1, embedded: x}\n"
    assert problems(text) == [
        "collector.retries: expected a mapping, got integer",
        "collector.limits: expected a mapping, got string",
        "collector.log: expected a mapping, got list",
        "collector.shard: expected a mapping, got integer",
        "sink.batch: expected a mapping, got integer",
        "sink.embedded: expected a mapping, got string",
    ]


def test_boolean_strings_port_range_and_non_string_url() -> None:
    config = load_config_text(acct(exporters='[{url: "http://h:1/m", enabled: "no"}]'), env={})
    assert config.accounts[0].exporters[0].enabled is False
    text = "providers:\n  p: {category: general, exporter_ports: {node: 70000}}\n"
    assert problems(text) == ["providers.p.exporter_ports.node: must be <= 65535, got 70000"]
    assert problems(acct(exporters="[{url: 9100}]")) == [
        "accounts[0].exporters[0].url: expected a URL string, got integer"
    ]
    assert problems(acct(", labels: {a: null, b: 2020-01-01}")) == [
        "accounts[0].labels.a: expected a string, got null",
        "accounts[0].labels.b: expected a string, got date",
    ]
