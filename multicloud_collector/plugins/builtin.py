"""Built-in scrape kinds, registered through the same hook third-party plugins use.

The scraper classes are imported inside the factories so that loading this plugin (and therefore
every ``mcc`` command) does not import the scrape stack until a Registry is actually built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from multicloud_collector.plugins.hookspecs import ScraperFactory, hookimpl

if TYPE_CHECKING:
    from multicloud_collector.scrape.base import Scraper


def _node() -> Scraper:
    from multicloud_collector.scrape.exposition import ExpositionScraper

    return ExpositionScraper(kind="node")


def _generic() -> Scraper:
    from multicloud_collector.scrape.exposition import ExpositionScraper

    return ExpositionScraper(kind="generic")


def _dcgm() -> Scraper:
    from multicloud_collector.scrape.dcgm import DcgmScraper

    return DcgmScraper()


def _promql() -> Scraper:
    from multicloud_collector.scrape.promql import PromQLScraper

    return PromQLScraper()


BUILTIN_SCRAPERS: dict[str, ScraperFactory] = {
    "node": _node,
    "generic": _generic,
    "dcgm": _dcgm,
    "promql": _promql,
}


@hookimpl
def register_scrapers(register: Callable[[str, ScraperFactory], None]) -> None:
    for kind, factory in BUILTIN_SCRAPERS.items():
        register(kind, factory)
