"""The plugin contract: every hook multicloud-collector calls, with its exact signature.

Hooks are synchronous on purpose (pluggy has no ``await``): registration hooks hand objects to a
``register`` callback, decision hooks return plain values, and anything that does I/O lives in
async methods of the registered objects or in the awaitable a lifecycle hook returns, which the
daemon awaits under a timeout. Hooks take keyword arguments only, so new arguments can be added
without breaking existing implementations (pluggy passes each impl only the names it declares).
``docs/plugin_hooks.md`` documents each hook; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pluggy import HookimplMarker, HookspecMarker

from multicloud_collector.model import TargetContext

if TYPE_CHECKING:
    from multicloud_collector.scrape.base import Scraper

PROJECT_NAME = "multicloud_collector"

hookspec = HookspecMarker(PROJECT_NAME)
hookimpl = HookimplMarker(PROJECT_NAME)

# A scraper factory takes no arguments and returns a ``multicloud_collector.scrape.base.Scraper``
# (``kind`` attribute, ``async scrape(target, session) -> ScrapeOutput``).
ScraperFactory = Callable[[], "Scraper"]


# ---- registration hooks: called once when the Registry is built --------------------------------


@hookspec
def register_scrapers(register: Callable[[str, ScraperFactory], None]) -> None:
    """Register scrape kinds: call ``register(kind, scraper_factory)`` once per kind.

    ``kind`` is the name used as ``kind:`` of a target in providers.yaml. A kind registered by two
    plugins is an error naming both. Built-in kinds (node, generic, dcgm, promql) use this hook too.
    """


@hookspec
def register_providers(register: Callable[[type], None]) -> None:
    """Register provider API adapter classes: call ``register(adapter_cls)`` once per class.

    ``adapter_cls.name`` is the provider name it serves (``type``/``name`` in providers.yaml).
    """


@hookspec
def catalog_providers() -> list[dict[str, Any]] | None:
    """Return extra provider catalog entries (same keys as providers.yaml entries), or None."""


# ---- per-target decision hooks: cheap, pure, never blocking -------------------------------------


@hookspec
def extra_labels(ctx: TargetContext) -> dict[str, str] | None:
    """Return labels added to every series of the target, or None.

    Called once per target when its series cache is created, not per sample.
    """


@hookspec(firstresult=True)
def filter_series(ctx: TargetContext, metric: str, labels: tuple[tuple[str, str], ...]) -> bool | None:
    """Return False to drop a series, True to keep it, None to let other plugins decide.

    Called once per new series of a target (the parser caches the answer). Stops at the first
    non-None result.
    """


# ---- lifecycle hooks: may return an awaitable ----------------------------------------------------


@hookspec
def startup(config: Any) -> Awaitable[None] | None:
    """Called once after the config is loaded and the store is open, before scraping starts.

    May return an awaitable; the daemon awaits it under a timeout and logs (never raises) errors.
    """


@hookspec
def shutdown(config: Any) -> Awaitable[None] | None:
    """Called once on stop, after scraping ends and before buffered rows are flushed.

    May return an awaitable; the daemon awaits it under a timeout and logs (never raises) errors.
    """
