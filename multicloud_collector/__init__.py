"""multicloud-collector: GPU and compute usage and cost from many clouds, side by side in ClickHouse."""

__version__ = "0.1.0"
