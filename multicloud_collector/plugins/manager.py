"""Build the pluggy plugin manager and the Registry of what plugins contributed.

Built-in features are plugins registered exactly like third-party ones (a tuple of module names),
so the built-in path exercises the same code a plugin author relies on. Third-party plugins come
from the ``multicloud_collector`` entry-point group; ``MCC_LOAD_PLUGINS=dist1,dist2`` restricts
loading to those distributions (empty = none) and ``MCC_TRACE_PLUGINS=1`` logs every hook call.
The Registry remembers which distribution registered each scrape kind and adapter, so
``mcc providers list`` and error messages can say where a thing came from.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from multicloud_collector import __version__
from multicloud_collector.model import TargetContext
from multicloud_collector.plugins import hookspecs
from multicloud_collector.plugins.listing import describe_plugins, format_table  # re-exported
from multicloud_collector.secrets import redact

if TYPE_CHECKING:
    from multicloud_collector.scrape.base import Scraper

log = structlog.get_logger(__name__)

SeriesFilter = Callable[[str, tuple[tuple[str, str], ...]], bool]

ENTRYPOINT_GROUP = hookspecs.PROJECT_NAME
# Built-in provider API adapters, each registered by its own ``plugin`` module (adapter name
# "lambda" lives in module ``lambda_cloud``: ``lambda`` is a Python keyword).
BUILTIN_ADAPTER_MODULES: tuple[str, ...] = (
    "vultr",
    "digitalocean",
    "runpod",
    "lambda_cloud",
    "paperspace",
    "linode",
    "hetzner",
    "ovhcloud",
    "coreweave",
    "kubernetes",
    "docker",
)
BUILTIN_ADAPTER_PLUGINS: tuple[str, ...] = tuple(
    f"multicloud_collector.providers.{name}.plugin" for name in BUILTIN_ADAPTER_MODULES
)
DEFAULT_PLUGINS: tuple[str, ...] = ("multicloud_collector.plugins.builtin", *BUILTIN_ADAPTER_PLUGINS)
BUILTIN_PACKAGE = "multicloud-collector (builtin)"
LOAD_ENV = "MCC_LOAD_PLUGINS"
TRACE_ENV = "MCC_TRACE_PLUGINS"


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid; the message names it."""


@dataclass(frozen=True, slots=True)
class PluginOrigin:
    """Where a registered thing came from: pluggy plugin name and its distribution."""

    plugin_name: str
    package: str
    version: str

    def __str__(self) -> str:
        ver = f" {self.version}" if self.version and "(builtin)" not in self.package else ""
        return f"plugin {self.plugin_name!r} ({self.package}{ver})"


class MccPluginManager(pluggy.PluginManager):
    """A PluginManager that also remembers each plugin's distribution (package, version)."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.plugin_packages: dict[str, tuple[str, str]] = {}

    def origin(self, plugin_name: str) -> PluginOrigin:
        package, version = self.plugin_packages.get(plugin_name, ("", ""))
        return PluginOrigin(plugin_name, package or "(registered at runtime)", version)


def build_plugin_manager(
    load_entrypoints: bool = True,
    *,
    default_plugins: Sequence[str] = DEFAULT_PLUGINS,
    env: Mapping[str, str] | None = None,
) -> MccPluginManager:
    """A new plugin manager (tests use this; the process uses the cached ``get_plugin_manager``)."""
    env = os.environ if env is None else env
    pm = MccPluginManager()
    pm.add_hookspecs(hookspecs)
    for modname in default_plugins:
        _register(pm, importlib.import_module(modname), modname, (BUILTIN_PACKAGE, __version__))
    if load_entrypoints:
        only = env.get(LOAD_ENV)
        if only is None:
            _load_all_entrypoints(pm)
        else:
            for dist_name in (n.strip() for n in only.split(",")):
                if dist_name:
                    _load_distribution(pm, dist_name)
    try:
        pm.check_pending()  # a hookimpl whose name matches no hook is a typo: fail at start-up
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or "?"
        raise PluginError(f"{pm.origin(name)} is invalid: {exc}") from exc
    if env.get(TRACE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        pm.add_hookcall_monitoring(_trace_before, _trace_after)
    return pm


_cached: dict[bool, MccPluginManager] = {}


def get_plugin_manager(load_entrypoints: bool = True) -> MccPluginManager:
    """The process-wide plugin manager, built on first use."""
    pm = _cached.get(load_entrypoints)
    if pm is None:
        pm = _cached[load_entrypoints] = build_plugin_manager(load_entrypoints)
    return pm


def reset_plugin_manager() -> None:
    """Forget the cached manager (tests that change the environment)."""
    _cached.clear()


def _register(pm: MccPluginManager, plugin: object, name: str, dist: tuple[str, str]) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {name!r} ({dist[0]}) is invalid: {exc}") from exc
    pm.plugin_packages[name] = dist


def _load_entrypoint(pm: MccPluginManager, ep: importlib.metadata.EntryPoint, dist: tuple[str, str]) -> None:
    if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
        return
    try:
        plugin = ep.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {ep.name!r} from {dist[0]} {dist[1]} failed to load ({ep.value}): {exc}; "
            f"uninstall it or exclude it with {LOAD_ENV}"
        ) from exc
    _register(pm, plugin, ep.name, dist)


def _dist_id(dist: importlib.metadata.Distribution) -> tuple[str, str]:
    return (dist.metadata["Name"] or "?", dist.version or "")


def _load_all_entrypoints(pm: MccPluginManager) -> None:
    # Same walk as pluggy's load_setuptools_entrypoints, plus the distribution of each plugin and
    # an error that names the failing distribution.
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRYPOINT_GROUP:
                _load_entrypoint(pm, ep, _dist_id(dist))


def _load_distribution(pm: MccPluginManager, dist_name: str) -> None:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise PluginError(f"{LOAD_ENV}: distribution {dist_name!r} is not installed") from exc
    eps = [ep for ep in dist.entry_points if ep.group == ENTRYPOINT_GROUP]
    if not eps:
        log.warning("plugin_distribution_without_entry_points", distribution=dist_name)
    for ep in eps:
        _load_entrypoint(pm, ep, _dist_id(dist))


def _short(value: object, limit: int = 200) -> str:
    text = redact(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _trace_before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
    log.info(
        "plugin_hook_call",
        hook=hook_name,
        plugins=[i.plugin_name for i in hook_impls],
        kwargs={k: _short(v) for k, v in kwargs.items()},
    )


def _trace_after(
    outcome: pluggy.Result[Any],
    hook_name: str,
    hook_impls: Sequence[pluggy.HookImpl],
    kwargs: Mapping[str, Any],
) -> None:
    if outcome.exception is not None:
        log.info("plugin_hook_failed", hook=hook_name, error=_short(outcome.exception))
    else:
        log.info("plugin_hook_result", hook=hook_name, result=_short(outcome.get_result()))


# ---- lifecycle hook results ----------------------------------------------------------------------


def _awaitable_owner(value: object) -> str:
    frame = getattr(value, "cr_frame", None)
    module = frame.f_globals.get("__name__", "?") if frame is not None else type(value).__module__
    return f"{module}.{getattr(value, '__qualname__', type(value).__name__)}"


async def await_hook_results(results: Iterable[object], timeout: float) -> list[object]:  # noqa: ASYNC109
    """Await the awaitables among hook results, each under ``timeout`` seconds, concurrently.

    A plugin that fails or hangs must not stop the collector: its error is logged with the
    plugin's name (module and function of the coroutine) and swallowed. Returns the successful
    results in order (plain values pass through).
    """

    async def one(value: object) -> tuple[bool, object]:
        if not inspect.isawaitable(value):
            return True, value
        owner = _awaitable_owner(value)
        try:
            return True, await asyncio.wait_for(_as_coro(value), timeout)
        except TimeoutError:
            log.error("plugin_hook_timeout", plugin=owner, timeout_s=timeout)
        except Exception as exc:
            log.error("plugin_hook_failed", plugin=owner, error=f"{type(exc).__name__}: {exc}")
        return False, None

    done = await asyncio.gather(*(one(r) for r in results))
    return [v for ok, v in done if ok]


async def _as_coro(value: Awaitable[object]) -> object:
    return await value


# ---- Registry ------------------------------------------------------------------------------------


class Registry:
    """What every plugin registered: scrapers (instantiated), adapters, extra catalog entries.

    ``origins`` maps ``"scraper:<kind>"``, ``"adapter:<name>"`` and ``"catalog:<name>"`` to the
    PluginOrigin that registered it.
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.scrapers: dict[str, Scraper] = {}
        self.adapters: dict[str, type] = {}
        self.extra_catalog: list[dict[str, Any]] = []
        self.origins: dict[str, PluginOrigin] = {}
        self._call_each("register_scrapers", self._scraper_register)
        self._call_each("register_providers", self._adapter_register)
        self._collect_catalog()

    def extra_labels(self, ctx: TargetContext) -> tuple[tuple[str, str], ...]:
        """Labels plugins add to every series of a target (call once per target, not per sample).

        When two plugins set the same label, which one wins is unspecified.
        """
        merged: dict[str, str] = {}
        for result in self.pm.hook.extra_labels(ctx=ctx):
            if isinstance(result, Mapping):
                merged.update((str(k), str(v)) for k, v in result.items())
            else:
                kind = type(result).__name__
                log.warning("plugin_extra_labels_ignored", target=ctx.target, result_type=kind)
        return tuple(sorted(merged.items()))

    def series_filter(self, ctx: TargetContext) -> SeriesFilter | None:
        """A ``keep(metric, labels) -> bool`` for one target, or None when no plugin filters.

        The parser calls it once per new series and caches the answer.
        """
        hook = self.pm.hook.filter_series
        if not hook.get_hookimpls():
            return None

        def keep(metric: str, labels: tuple[tuple[str, str], ...]) -> bool:
            return hook(ctx=ctx, metric=metric, labels=labels) is not False

        return keep

    def scraper_origin(self, kind: str) -> PluginOrigin:
        return self.origins[f"scraper:{kind}"]

    def adapter_origin(self, name: str) -> PluginOrigin:
        return self.origins[f"adapter:{name}"]

    def _origin(self, plugin_name: str) -> PluginOrigin:
        if isinstance(self.pm, MccPluginManager):
            return self.pm.origin(plugin_name)
        return PluginOrigin(plugin_name, "(registered at runtime)", "")

    def _call_each(self, hook: str, make_register: Callable[[PluginOrigin], Callable[..., None]]) -> None:
        # One call per implementation so each ``register`` knows which plugin is calling.
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                continue
            origin = self._origin(impl.plugin_name)
            args = {"register": make_register(origin)}
            try:
                impl.function(**{a: args[a] for a in impl.argnames})
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{origin} failed in {hook}: {type(exc).__name__}: {exc}") from exc

    def _claim(self, key: str, what: str, origin: PluginOrigin) -> None:
        prev = self.origins.get(key)
        if prev is not None:
            raise PluginError(f"{what} is registered twice: by {prev} and by {origin}")
        self.origins[key] = origin

    def _scraper_register(self, origin: PluginOrigin) -> Callable[..., None]:
        def register(kind: str, scraper_factory: hookspecs.ScraperFactory) -> None:
            if not isinstance(kind, str) or not kind:
                raise PluginError(f"{origin}: register_scrapers: kind must be a non-empty string: {kind!r}")
            if not callable(scraper_factory):
                raise PluginError(f"{origin}: register_scrapers: factory for kind {kind!r} is not callable")
            self._claim(f"scraper:{kind}", f"scrape kind {kind!r}", origin)
            try:
                self.scrapers[kind] = scraper_factory()
            except Exception as exc:
                raise PluginError(f"{origin}: scraper factory for kind {kind!r} failed: {exc}") from exc

        return register

    def _adapter_register(self, origin: PluginOrigin) -> Callable[..., None]:
        def register(adapter_cls: type) -> None:
            name = getattr(adapter_cls, "name", None)
            if not isinstance(adapter_cls, type) or not isinstance(name, str) or not name:
                raise PluginError(
                    f"{origin}: register_providers: needs a class with a string 'name': {adapter_cls!r}"
                )
            self._claim(f"adapter:{name}", f"provider adapter {name!r}", origin)
            self.adapters[name] = adapter_cls

        return register

    def _collect_catalog(self) -> None:
        for impl in self.pm.hook.catalog_providers.get_hookimpls():
            if impl.wrapper or impl.hookwrapper:
                continue
            origin = self._origin(impl.plugin_name)
            try:
                entries = impl.function()
            except Exception as exc:
                msg = f"{origin} failed in catalog_providers: {type(exc).__name__}: {exc}"
                raise PluginError(msg) from exc
            if entries is None:
                continue
            if not isinstance(entries, list):
                raise PluginError(f"{origin}: catalog_providers must return a list of dicts or None")
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise PluginError(f"{origin}: catalog_providers[{i}] needs a string 'name' key")
                self._claim(f"catalog:{entry['name']}", f"catalog provider {entry['name']!r}", origin)
                self.extra_catalog.append(dict(entry))


__all__ = [
    "BUILTIN_PACKAGE",
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "MccPluginManager",
    "PluginError",
    "PluginOrigin",
    "Registry",
    "await_hook_results",
    "build_plugin_manager",
    "describe_plugins",
    "format_table",
    "get_plugin_manager",
    "reset_plugin_manager",
]
