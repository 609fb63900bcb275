"""Built-in scrape kinds and the bounded HTTP fetch they share."""

from __future__ import annotations

from multicloud_collector.scrape.base import PromQuery, RetryPolicy, Scraper, Target, is_transient
from multicloud_collector.scrape.http import FetchError, FetchResult, fetch

__all__ = [
    "FetchError",
    "FetchResult",
    "PromQuery",
    "RetryPolicy",
    "Scraper",
    "Target",
    "builtin_scrapers",
    "fetch",
    "is_transient",
]


def builtin_scrapers() -> dict[str, Scraper]:
    """One instance per built-in kind (imported lazily: they pull in the parser and normalizers)."""
    from multicloud_collector.scrape.dcgm import DcgmScraper
    from multicloud_collector.scrape.exposition import ExpositionScraper
    from multicloud_collector.scrape.promql import PromQLScraper

    return {
        "node": ExpositionScraper("node"),
        "generic": ExpositionScraper("generic"),
        "dcgm": DcgmScraper(),
        "promql": PromQLScraper(),
    }
