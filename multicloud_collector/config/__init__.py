"""Configuration: ``providers.yaml`` -> typed, validated, frozen ``Config``.

See ``docs/configuration.md`` for every key. Import from here, not from the submodules.
"""

from multicloud_collector.config.loader import load_config, load_config_text, resolve_config_path
from multicloud_collector.config.model import (
    AccountConfig,
    BatchConfig,
    ClickHouseConfig,
    CollectorConfig,
    Config,
    EmbeddedConfig,
    ExporterConfig,
    LogConfig,
    PrometheusConfig,
    PromQueryConfig,
    ProviderSpec,
    RetryConfig,
    ShardConfig,
    SinkConfig,
    exporter_interval,
    exporter_timeout,
)
from multicloud_collector.config.problems import (
    ConfigError,
    ConfigFileNotFoundError,
    Problem,
    format_problems,
)
from multicloud_collector.config.units import format_duration, format_size, parse_duration, parse_size

__all__ = [
    "AccountConfig",
    "BatchConfig",
    "ClickHouseConfig",
    "CollectorConfig",
    "Config",
    "ConfigError",
    "ConfigFileNotFoundError",
    "EmbeddedConfig",
    "ExporterConfig",
    "LogConfig",
    "Problem",
    "PromQueryConfig",
    "PrometheusConfig",
    "ProviderSpec",
    "RetryConfig",
    "ShardConfig",
    "SinkConfig",
    "exporter_interval",
    "exporter_timeout",
    "format_duration",
    "format_problems",
    "format_size",
    "load_config",
    "load_config_text",
    "parse_duration",
    "parse_size",
    "resolve_config_path",
]
