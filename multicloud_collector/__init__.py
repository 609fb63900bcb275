"""multicloud-collector: GPU and compute usage and cost from many clouds, side by side in ClickHouse."""

__version__ = "0.1.0"

from multicloud_collector.plugins.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl"]
