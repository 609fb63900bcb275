"""Typed, frozen configuration: what the rest of the collector reads after loading.

Defaults live here (not scattered through the code) so that ``docs/configuration.md``, the
loader and every consumer agree. Durations are seconds as ``float``, sizes are bytes as ``int``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from multicloud_collector.config.problems import Problem
from multicloud_collector.model import ScrapeLimits
from multicloud_collector.secrets import Secret

CATEGORIES: tuple[str, ...] = ("gpu-cloud", "general", "container", "big-3", "on-prem")
CAPABILITIES: tuple[str, ...] = ("prometheus", "dcgm", "inventory_api", "billing_api", "pricing_api")
API_AUTH_STYLES: tuple[str, ...] = (
    "bearer",
    "basic",
    "api-key-header",
    "ovh-signature",
    "oauth2",
    "kubeconfig",
    "service-account",
    "unix-socket",
    "none",
)
BUILTIN_EXPORTER_KINDS: frozenset[str] = frozenset({"node", "dcgm", "generic"})
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: tuple[str, ...] = ("auto", "json", "console")
SINK_KINDS: tuple[str, ...] = ("embedded", "clickhouse")
COMPRESSIONS: tuple[str, ...] = ("none", "gzip")
SPOOL_POLICIES: tuple[str, ...] = ("drop_oldest", "block")

# Derived scrape timeouts never reach the interval: a scrape must end before the next one starts.
TIMEOUT_FRACTION_OF_INTERVAL = 0.8

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RetryConfig:
    max_tries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: Literal["auto", "json", "console"] = "auto"


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """This instance scrapes the targets whose hash mod ``count`` equals ``index``."""

    index: int = 0
    count: int = 1


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    interval: float = 15.0
    scrape_timeout: float = 10.0
    max_concurrency: int = 64
    listen: str = "127.0.0.1:9464"
    state_dir: str = "./mcc-data/state"
    shutdown_grace: float = 10.0
    retries: RetryConfig = field(default_factory=RetryConfig)
    limits: ScrapeLimits = field(default_factory=ScrapeLimits)
    log: LogConfig = field(default_factory=LogConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_rows: int = 50_000
    max_bytes: int = 16 * MiB
    max_age: float = 5.0
    max_buffer_bytes: int = 256 * MiB


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    path: str = "./mcc-data/chdb"
    database: str = "mcc"


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    url: str
    database: str = "mcc"
    user: str = "default"
    password: Secret | None = None
    ca_file: str | None = None
    verify: bool = True
    timeout: float = 30.0
    compression: Literal["none", "gzip"] = "none"
    cluster: str | None = None
    retry_initial: float = 1.0
    retry_max: float = 60.0


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """Disk spool for batches ClickHouse could not take; ``dir`` None = ``<state_dir>/spool``."""

    dir: str | None = None
    max_bytes: int = 1024 * MiB
    policy: Literal["drop_oldest", "block"] = "drop_oldest"
    segment_bytes: int = 64 * MiB
    replay_rate: float = 100_000.0  # rows/s while draining a backlog; 0 = unpaced

    def directory(self, state_dir: str) -> str:
        return self.dir if self.dir is not None else str(Path(state_dir) / "spool")


@dataclass(frozen=True, slots=True)
class QuarantineConfig:
    """Rows rejected as data errors; ``dir`` None = ``<state_dir>/quarantine``."""

    dir: str | None = None
    max_bytes: int = 100 * MiB

    def directory(self, state_dir: str) -> str:
        return self.dir if self.dir is not None else str(Path(state_dir) / "quarantine")


@dataclass(frozen=True, slots=True)
class SinkConfig:
    kind: Literal["embedded", "clickhouse"] = "embedded"
    batch: BatchConfig = field(default_factory=BatchConfig)
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)
    clickhouse: ClickHouseConfig | None = None
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    quarantine: QuarantineConfig = field(default_factory=QuarantineConfig)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A catalog entry: one kind of cloud or platform (not a customer's use of it)."""

    name: str
    display_name: str = ""
    category: str = "general"
    capabilities: tuple[str, ...] = ("prometheus",)
    api_base_url: str | None = None
    api_auth: str | None = None
    exporter_ports: dict[str, int] = field(default_factory=dict)
    requirements: tuple[str, ...] = ()
    docs_url: str | None = None
    adapter: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ExporterConfig:
    """One exposition endpoint scraped as ``kind`` (node, dcgm, generic or a plugin's kind)."""

    url: str
    kind: str = "generic"
    name: str | None = None
    interval: float | None = None
    scrape_timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    headers: dict[str, Secret | str] = field(default_factory=dict)
    bearer_token: Secret | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class PromQueryConfig:
    name: str
    expr: str


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """A Prometheus-compatible HTTP API queried with instant queries each interval."""

    url: str
    queries: tuple[PromQueryConfig, ...] = ()
    bearer_token: Secret | None = None
    headers: dict[str, Secret | str] = field(default_factory=dict)
    scrape_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One customer's use of one provider: endpoints, credentials (by reference) and intervals."""

    id: str
    customer: str
    provider: str
    enabled: bool = True
    interval: float | None = None
    scrape_timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    prometheus: PrometheusConfig | None = None
    exporters: tuple[ExporterConfig, ...] = ()
    api: Mapping[str, object] = field(default_factory=dict)

    def effective_interval(self, collector: CollectorConfig) -> float:
        return self.interval if self.interval is not None else collector.interval

    def effective_timeout(self, collector: CollectorConfig) -> float:
        """Account timeout, else the collector's; always below the effective interval."""
        interval = self.effective_interval(collector)
        timeout = self.scrape_timeout if self.scrape_timeout is not None else collector.scrape_timeout
        return clamp_timeout(timeout, interval)


def clamp_timeout(timeout: float, interval: float) -> float:
    """``timeout`` if it ends before the next scrape is due, else 0.8 x ``interval``."""
    if timeout >= interval:
        return interval * TIMEOUT_FRACTION_OF_INTERVAL
    return timeout


def exporter_interval(exporter: ExporterConfig, account: AccountConfig, collector: CollectorConfig) -> float:
    """The interval of one exporter target: its own, else the account's, else the collector's."""
    return exporter.interval if exporter.interval is not None else account.effective_interval(collector)


def exporter_timeout(exporter: ExporterConfig, account: AccountConfig, collector: CollectorConfig) -> float:
    """The timeout of one exporter target, clamped below its interval like the account's."""
    interval = exporter_interval(exporter, account, collector)
    if exporter.scrape_timeout is not None:
        timeout = exporter.scrape_timeout
    elif account.scrape_timeout is not None:
        timeout = account.scrape_timeout
    else:
        timeout = collector.scrape_timeout
    return clamp_timeout(timeout, interval)


@dataclass(frozen=True, slots=True)
class Config:
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    providers: dict[str, ProviderSpec] = field(default_factory=dict)
    accounts: tuple[AccountConfig, ...] = ()
    source_path: Path | None = None
    warnings: tuple[Problem, ...] = ()

    def enabled_accounts(self) -> tuple[AccountConfig, ...]:
        """Accounts to collect: enabled themselves and their provider enabled."""
        out = []
        for a in self.accounts:
            spec = self.providers.get(a.provider)
            if a.enabled and spec is not None and spec.enabled:
                out.append(a)
        return tuple(out)

    def account(self, account_id: str) -> AccountConfig | None:
        return next((a for a in self.accounts if a.id == account_id), None)
