"""I/O-free parsers for what scrapers fetch (Prometheus text format, OpenMetrics)."""

from multicloud_collector.parse.cache import SeriesCache
from multicloud_collector.parse.errors import ExpositionError
from multicloud_collector.parse.exposition import ParsedExposition, is_openmetrics, parse_exposition

__all__ = ["ExpositionError", "ParsedExposition", "SeriesCache", "is_openmetrics", "parse_exposition"]
