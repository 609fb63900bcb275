"""Build the ``collector``, ``sink`` and ``providers`` sections from resolved YAML."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, cast

from multicloud_collector.config.fields import Checker, Section, type_name
from multicloud_collector.config.model import (
    API_AUTH_STYLES,
    CAPABILITIES,
    CATEGORIES,
    COMPRESSIONS,
    LOG_FORMATS,
    LOG_LEVELS,
    SINK_KINDS,
    SPOOL_POLICIES,
    BatchConfig,
    ClickHouseConfig,
    CollectorConfig,
    EmbeddedConfig,
    LogConfig,
    ProviderSpec,
    QuarantineConfig,
    RetryConfig,
    ShardConfig,
    SinkConfig,
    SpoolConfig,
)
from multicloud_collector.config.problems import ConfigError
from multicloud_collector.model import ScrapeLimits

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
_LIMIT_KEYS = (
    "body_size",
    "samples_per_scrape",
    "labels_per_series",
    "label_name_length",
    "label_value_length",
    "line_length",
)
_PROVIDER_KEYS = (
    "display_name",
    "category",
    "capabilities",
    "api_base_url",
    "api_auth",
    "exporter_ports",
    "requirements",
    "docs_url",
    "adapter",
    "enabled",
)


def listen_problem(value: str) -> str | None:
    """Why ``value`` is not ``host:port`` (``[v6]:port`` for IPv6), or None. Port 0 = any free port."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        return "expected host:port, e.g. 127.0.0.1:9464"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        return "port must be 0-65535 (0 picks a free port)"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "invalid IPv6 address in brackets"
    elif ":" in host:
        return "put an IPv6 host in brackets, e.g. [::1]:9464"
    return None


def is_loopback_listen(value: str) -> bool:
    host = value.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_collector(chk: Checker, root: Section) -> CollectorConfig:
    c = root.mapping(
        "collector",
        (
            "interval",
            "scrape_timeout",
            "max_concurrency",
            "listen",
            "state_dir",
            "shutdown_grace",
            "retries",
            "limits",
            "log",
            "shard",
        ),
    )
    if c is None:
        return CollectorConfig()
    d = CollectorConfig()
    interval = c.duration("interval", d.interval)
    timeout = c.duration("scrape_timeout", d.scrape_timeout)
    if c.has("interval") and c.has("scrape_timeout") and timeout >= interval:
        chk.report(c.at("scrape_timeout"), f"must be less than interval ({c.raw('interval')})")
    listen = c.string("listen", d.listen)
    if (why := listen_problem(listen)) is not None:
        chk.report(c.at("listen"), f"{why}, got {listen!r}")
        listen = d.listen
    elif not is_loopback_listen(listen):
        chk.report(
            c.at("listen"),
            f"{listen} is reachable from other hosts; the query API has no authentication",
            "warning",
        )
    return CollectorConfig(
        interval=interval,
        scrape_timeout=timeout,
        max_concurrency=c.integer("max_concurrency", d.max_concurrency, minimum=1),
        listen=listen,
        state_dir=c.string("state_dir", d.state_dir),
        shutdown_grace=c.duration("shutdown_grace", d.shutdown_grace, positive=False),
        retries=_retries(chk, c),
        limits=_limits(c),
        log=_log(c),
        shard=_shard(chk, c),
    )


def _retries(chk: Checker, c: Section) -> RetryConfig:
    r = c.mapping("retries", ("max_tries", "base_delay", "max_delay"))
    d = RetryConfig()
    if r is None:
        return d
    out = RetryConfig(
        max_tries=r.integer("max_tries", d.max_tries, minimum=1),
        base_delay=r.duration("base_delay", d.base_delay, positive=False),
        max_delay=r.duration("max_delay", d.max_delay, positive=False),
    )
    if out.max_delay < out.base_delay:
        chk.report(r.at("max_delay"), "must be >= base_delay")
    return out


def _limits(c: Section) -> ScrapeLimits:
    s = c.mapping("limits", _LIMIT_KEYS)
    d = ScrapeLimits()
    if s is None:
        return d
    return ScrapeLimits(
        body_size_bytes=s.size("body_size", d.body_size_bytes),
        samples_per_scrape=s.integer("samples_per_scrape", d.samples_per_scrape, minimum=0),
        labels_per_series=s.integer("labels_per_series", d.labels_per_series, minimum=0),
        label_name_length=s.integer("label_name_length", d.label_name_length, minimum=0),
        label_value_length=s.integer("label_value_length", d.label_value_length, minimum=0),
        line_length=s.size("line_length", d.line_length),
    )


def _log(c: Section) -> LogConfig:
    s = c.mapping("log", ("level", "format"))
    d = LogConfig()
    if s is None:
        return d
    level = s.string("level", d.level, choices=LOG_LEVELS + tuple(x.upper() for x in LOG_LEVELS)).lower()
    fmt = s.string("format", d.format, choices=LOG_FORMATS)
    return LogConfig(level=level, format=cast(Any, fmt))


def _shard(chk: Checker, c: Section) -> ShardConfig:
    s = c.mapping("shard", ("index", "count"))
    if s is None:
        return ShardConfig()
    count = s.integer("count", 1, minimum=1)
    index = s.integer("index", 0, minimum=0)
    if index >= count:
        chk.report(s.at("index"), f"must be less than count ({count}), got {index}")
        index = 0
    return ShardConfig(index=index, count=count)


def build_sink(chk: Checker, root: Section) -> SinkConfig:
    s = root.mapping("sink", ("kind", "batch", "embedded", "clickhouse", "spool", "quarantine"))
    if s is None:
        return SinkConfig()
    kind = s.string("kind", "embedded", choices=SINK_KINDS)
    b = s.mapping("batch", ("max_rows", "max_bytes", "max_age", "max_buffer_bytes"))
    batch = BatchConfig()
    if b is not None:
        batch = BatchConfig(
            max_rows=b.integer("max_rows", batch.max_rows, minimum=1),
            max_bytes=b.size("max_bytes", batch.max_bytes),
            max_age=b.duration("max_age", batch.max_age),
            max_buffer_bytes=b.size("max_buffer_bytes", batch.max_buffer_bytes),
        )
        if batch.max_buffer_bytes < batch.max_bytes:
            chk.report(b.at("max_buffer_bytes"), "must be >= max_bytes (the buffer holds at least one batch)")
    e = s.mapping("embedded", ("path", "database"))
    embedded = EmbeddedConfig()
    if e is not None:
        embedded = EmbeddedConfig(
            path=e.string("path", embedded.path), database=e.string("database", embedded.database)
        )
    clickhouse = None
    if kind == "clickhouse" and not s.has("clickhouse"):
        chk.report(s.at("clickhouse.url"), "is required when sink.kind is clickhouse")
    elif s.has("clickhouse"):
        clickhouse = _clickhouse(s)
    spool = _spool(chk, s, batch)
    quarantine = QuarantineConfig()
    q = s.mapping("quarantine", ("dir", "max_bytes"))
    if q is not None:
        quarantine = QuarantineConfig(
            dir=q.opt_string("dir"), max_bytes=q.size("max_bytes", quarantine.max_bytes)
        )
    return SinkConfig(
        kind=cast(Any, kind),
        batch=batch,
        embedded=embedded,
        clickhouse=clickhouse,
        spool=spool,
        quarantine=quarantine,
    )


def _spool(chk: Checker, s: Section, batch: BatchConfig) -> SpoolConfig:
    keys = ("dir", "max_bytes", "policy", "segment_bytes", "replay_rate")
    p = s.mapping("spool", keys)
    d = SpoolConfig()
    if p is None:
        return d
    out = SpoolConfig(
        dir=p.opt_string("dir"),
        max_bytes=p.size("max_bytes", d.max_bytes),
        policy=cast(Any, p.string("policy", d.policy, choices=SPOOL_POLICIES)),
        segment_bytes=p.size("segment_bytes", d.segment_bytes),
        replay_rate=float(p.integer("replay_rate", int(d.replay_rate), minimum=0)),
    )
    if out.max_bytes < 2 * out.segment_bytes:
        chk.report(
            p.at("max_bytes"), "must be at least twice segment_bytes (the oldest segment is dropped whole)"
        )
    elif out.max_bytes < 2 * batch.max_bytes:
        chk.report(p.at("max_bytes"), "must be at least twice sink.batch.max_bytes (a batch is one record)")
    return out


def _clickhouse(s: Section) -> ClickHouseConfig | None:
    keys = (
        "url", "database", "user", "password", "ca_file", "verify", "timeout", "compression", "cluster",
        "retry_initial", "retry_max",
    )
    c = s.mapping("clickhouse", keys)
    if c is None:
        return None
    d = ClickHouseConfig(url="")
    return ClickHouseConfig(
        url=c.url("url"),
        database=c.string("database", d.database),
        user=c.string("user", d.user),
        password=c.secret("password"),
        ca_file=c.opt_string("ca_file"),
        verify=c.boolean("verify", d.verify),
        timeout=c.duration("timeout", d.timeout),
        compression=cast(Any, c.string("compression", d.compression, choices=COMPRESSIONS)),
        cluster=c.opt_string("cluster"),
        retry_initial=c.duration("retry_initial", d.retry_initial),
        retry_max=c.duration("retry_max", d.retry_max),
    )


def build_providers(chk: Checker, root: Section) -> dict[str, ProviderSpec]:
    raw = root.raw("providers")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        chk.report("providers", f"expected a mapping of provider name to spec, got {type_name(raw)}")
        return {}
    out: dict[str, ProviderSpec] = {}
    for name, spec in raw.items():
        path = f"providers.{name}"
        if not NAME_PATTERN.fullmatch(name):
            chk.report(path, "provider names use lowercase letters, digits, '-' and '_'")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            chk.report(path, f"expected a mapping, got {type_name(spec)}")
            continue
        out[name] = _provider(chk, Section(chk, path, spec, _PROVIDER_KEYS), name)
    return out


def _provider(chk: Checker, p: Section, name: str) -> ProviderSpec:
    caps = p.string_list("capabilities") if p.has("capabilities") else ("prometheus",)
    for i, cap in enumerate(caps):
        if cap not in CAPABILITIES:
            chk.report(
                f"{p.at('capabilities')}[{i}]",
                f"unknown capability {cap!r}; use one of {', '.join(CAPABILITIES)}",
            )
    ports: dict[str, int] = {}
    raw_ports = p.raw("exporter_ports")
    if raw_ports is not None and not isinstance(raw_ports, dict):
        chk.report(p.at("exporter_ports"), f"expected a mapping of kind to port, got {type_name(raw_ports)}")
    elif raw_ports:
        ports_section = Section(chk, p.at("exporter_ports"), raw_ports, tuple(raw_ports))
        for kind in raw_ports:
            ports[kind] = ports_section.integer(kind, 0, minimum=1, maximum=65535)
    return ProviderSpec(
        name=name,
        display_name=p.string("display_name", name),
        category=p.string("category", "general", required=True, choices=CATEGORIES),
        capabilities=caps,
        api_base_url=p.url("api_base_url", required=False) or None,
        api_auth=p.string("api_auth", choices=API_AUTH_STYLES) if p.has("api_auth") else None,
        exporter_ports=ports,
        requirements=p.string_list("requirements"),
        docs_url=p.url("docs_url", required=False) or None,
        adapter=p.opt_string("adapter"),
        enabled=p.boolean("enabled", True),
    )


def provider_from_mapping(name: str, data: Mapping[str, Any]) -> ProviderSpec:
    """One catalog entry from a plain mapping (e.g. a plugin's ``catalog_providers`` hook).

    Raises ``ConfigError`` naming ``providers.<name>.<key>`` on any error.
    """
    chk = Checker()
    providers = build_providers(chk, Section(chk, "", {"providers": {name: dict(data)}}, ("providers",)))
    errors = [p for p in chk.problems if p.is_error]
    if errors:
        raise ConfigError(errors)
    return providers[name]
