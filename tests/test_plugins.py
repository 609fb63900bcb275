"""Every hook exercised through a real plugin manager, plus Registry, listing and lifecycle helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy
import pytest
from structlog.testing import capture_logs

from multicloud_collector.model import TargetContext
from multicloud_collector.plugins import builtin, hookimpl
from multicloud_collector.plugins.manager import (
    BUILTIN_PACKAGE,
    MccPluginManager,
    PluginError,
    PluginOrigin,
    Registry,
    await_hook_results,
    build_plugin_manager,
    describe_plugins,
    format_table,
    get_plugin_manager,
    reset_plugin_manager,
)

CTX = TargetContext(
    "cust", "acme", "acct-1", "acct-1/node/http://127.0.0.1:9100/metrics", "node", "exposition"
)


class FakeScraper:
    kind = "fake"

    def __init__(self) -> None:
        self.made = True

    async def scrape(self, target: Any, session: Any) -> Any:
        raise NotImplementedError


class AcmeAdapter:
    name = "acme"


@pytest.fixture
def pm() -> MccPluginManager:
    """A manager with no built-ins and no entry points: only the plugins a test registers."""
    return build_plugin_manager(load_entrypoints=False, default_plugins=())


# ---- register_scrapers ---------------------------------------------------------------------------


def test_hook_register_scrapers(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("fake", FakeScraper)

    pm.register(Plug(), name="fakeplug")
    reg = Registry(pm)
    assert isinstance(reg.scrapers["fake"], FakeScraper)
    assert reg.scraper_origin("fake") == PluginOrigin("fakeplug", "(registered at runtime)", "")


def test_hook_register_scrapers_duplicate_kind_names_both_plugins(pm: MccPluginManager) -> None:
    class One:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("fake", FakeScraper)

    pm.register(One(), name="first-plug")
    pm.register(One(), name="second-plug")
    with pytest.raises(PluginError, match=r"scrape kind 'fake' is registered twice") as exc:
        Registry(pm)
    assert "first-plug" in str(exc.value) and "second-plug" in str(exc.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", FakeScraper), "kind must be a non-empty string"),
        ((42, FakeScraper), "kind must be a non-empty string"),
        (("fake", "not callable"), "factory for kind 'fake' is not callable"),
    ],
)
def test_register_scrapers_rejects_bad_arguments(
    pm: MccPluginManager, args: tuple[Any, Any], message: str
) -> None:
    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register(*args)

    pm.register(Plug(), name="badplug")
    with pytest.raises(PluginError, match=message) as exc:
        Registry(pm)
    assert "badplug" in str(exc.value)


def test_register_scrapers_failing_factory_or_hook_names_the_plugin(pm: MccPluginManager) -> None:
    def broken() -> Any:
        raise RuntimeError("no GPU here")

    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("broken", broken)

    pm.register(Plug(), name="brokenplug")
    with pytest.raises(PluginError, match=r"'brokenplug'.*kind 'broken' failed: no GPU here"):
        Registry(pm)

    pm2 = build_plugin_manager(load_entrypoints=False, default_plugins=())

    class Raiser:
        @hookimpl
        def register_scrapers(self) -> None:
            raise KeyError("oops")

    pm2.register(Raiser(), name="raiser")
    with pytest.raises(PluginError, match=r"'raiser'.*failed in register_scrapers: KeyError"):
        Registry(pm2)


# ---- register_providers --------------------------------------------------------------------------


def test_hook_register_providers(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(AcmeAdapter)

    pm.register(Plug(), name="acmeplug")
    reg = Registry(pm)
    assert reg.adapters == {"acme": AcmeAdapter}
    assert reg.adapter_origin("acme").plugin_name == "acmeplug"


@pytest.mark.parametrize("bad", [object(), type("NoName", (), {}), type("EmptyName", (), {"name": ""})])
def test_register_providers_needs_a_class_with_name(pm: MccPluginManager, bad: Any) -> None:
    class Plug:
        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(bad)

    pm.register(Plug(), name="adapterplug")
    with pytest.raises(PluginError, match=r"'adapterplug'.*needs a class with a string 'name'"):
        Registry(pm)


def test_register_providers_duplicate_is_an_error(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(AcmeAdapter)

    pm.register(Plug(), name="a")
    pm.register(Plug(), name="b")
    with pytest.raises(PluginError, match="provider adapter 'acme' is registered twice"):
        Registry(pm)


# ---- catalog_providers ---------------------------------------------------------------------------


def test_hook_catalog_providers(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def catalog_providers(self) -> list[dict[str, Any]]:
            return [{"name": "acme", "category": "gpu-cloud", "capabilities": ["prometheus", "dcgm"]}]

    class Nothing:
        @hookimpl
        def catalog_providers(self) -> None:
            return None

    pm.register(Plug(), name="catplug")
    pm.register(Nothing(), name="nothing")
    reg = Registry(pm)
    assert reg.extra_catalog == [
        {"name": "acme", "category": "gpu-cloud", "capabilities": ["prometheus", "dcgm"]}
    ]
    assert reg.origins["catalog:acme"].plugin_name == "catplug"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"name": "x"}, "must return a list of dicts or None"),
        ([{"category": "gpu-cloud"}], r"catalog_providers\[0\] needs a string 'name'"),
        (["acme"], r"catalog_providers\[0\] needs a string 'name'"),
    ],
)
def test_catalog_providers_rejects_bad_entries(pm: MccPluginManager, result: Any, message: str) -> None:
    class Plug:
        @hookimpl
        def catalog_providers(self) -> Any:
            return result

    pm.register(Plug(), name="badcat")
    with pytest.raises(PluginError, match=message):
        Registry(pm)


def test_catalog_providers_exception_names_the_plugin(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def catalog_providers(self) -> Any:
            raise OSError("catalog file missing")

    pm.register(Plug(), name="flaky")
    with pytest.raises(
        PluginError, match=r"'flaky' .*failed in catalog_providers: OSError: catalog file missing"
    ):
        Registry(pm)


# ---- extra_labels --------------------------------------------------------------------------------


def test_hook_extra_labels(pm: MccPluginManager) -> None:
    class Region:
        @hookimpl
        def extra_labels(self, ctx: TargetContext) -> dict[str, str] | None:
            return {"region": "eu-1"} if ctx.provider == "acme" else None

    class Team:
        @hookimpl
        def extra_labels(self, ctx: TargetContext) -> dict[str, str]:
            return {"team": ctx.customer}

    class Wrong:
        @hookimpl
        def extra_labels(self) -> Any:
            return ["not", "a", "dict"]

    pm.register(Region(), name="region")
    pm.register(Team(), name="team")
    pm.register(Wrong(), name="wrong")
    reg = Registry(pm)
    with capture_logs() as logs:
        labels = reg.extra_labels(CTX)
    assert labels == (("region", "eu-1"), ("team", "cust"))
    assert [e["event"] for e in logs] == ["plugin_extra_labels_ignored"]
    other = TargetContext("c2", "gcp", "a", "t", "node", "exposition")
    assert reg.extra_labels(other) == (("team", "c2"),)


# ---- filter_series -------------------------------------------------------------------------------


def test_hook_filter_series(pm: MccPluginManager) -> None:
    seen: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    class Undecided:
        @hookimpl
        def filter_series(self, metric: str, labels: tuple[tuple[str, str], ...]) -> None:
            seen.append((metric, labels))
            return None

    class DropScrapeCollector:
        @hookimpl
        def filter_series(self, ctx: TargetContext, metric: str) -> bool | None:
            if ctx.kind == "node" and metric.startswith("node_scrape_collector_"):
                return False
            return None

    assert Registry(pm).series_filter(CTX) is None  # nobody filters: the parser can skip the call
    pm.register(Undecided(), name="undecided")
    pm.register(DropScrapeCollector(), name="dropper")
    keep = Registry(pm).series_filter(CTX)
    assert keep is not None
    assert keep("node_scrape_collector_success", (("collector", "cpu"),)) is False
    assert keep("node_load1", ()) is True
    assert ("node_load1", ()) in seen


def test_filter_series_is_firstresult(pm: MccPluginManager) -> None:
    calls: list[str] = []

    class Keep:
        @hookimpl
        def filter_series(self) -> bool:
            calls.append("keep")
            return True

    class Drop:
        @hookimpl(tryfirst=True)
        def filter_series(self) -> bool:
            calls.append("drop")
            return False

    pm.register(Keep(), name="keep")
    pm.register(Drop(), name="drop")
    assert pm.hook.filter_series(ctx=CTX, metric="m", labels=()) is False
    assert calls == ["drop"]


# ---- startup / shutdown and await_hook_results ---------------------------------------------------


@dataclass
class Cfg:
    events: list[str] = field(default_factory=list)


async def test_hook_startup(pm: MccPluginManager) -> None:
    class AsyncPlug:
        @hookimpl
        async def startup(self, config: Cfg) -> str:
            config.events.append("async-started")
            return "async-done"

    class SyncPlug:
        @hookimpl
        def startup(self, config: Cfg) -> None:
            config.events.append("sync-started")

    pm.register(AsyncPlug(), name="asyncplug")
    pm.register(SyncPlug(), name="syncplug")
    cfg = Cfg()
    results = await await_hook_results(pm.hook.startup(config=cfg), timeout=5)
    assert sorted(cfg.events) == ["async-started", "sync-started"]
    assert "async-done" in results


async def test_hook_shutdown(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        async def shutdown(self, config: Cfg) -> None:
            config.events.append("closed")

    pm.register(Plug(), name="closer")
    cfg = Cfg()
    assert await await_hook_results(pm.hook.shutdown(config=cfg), timeout=5) == [None]
    assert cfg.events == ["closed"]


async def test_await_hook_results_swallows_failing_and_slow_plugins(pm: MccPluginManager) -> None:
    never = asyncio.Event()
    cancelled = asyncio.Event()

    class Slow:
        @hookimpl
        async def startup(self, config: Cfg) -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

    class Failing:
        @hookimpl
        async def startup(self, config: Cfg) -> None:
            raise RuntimeError("cannot reach the license server")

    class Good:
        @hookimpl
        async def startup(self, config: Cfg) -> str:
            return "good"

    pm.register(Slow(), name="slow")
    pm.register(Failing(), name="failing")
    pm.register(Good(), name="good")
    with capture_logs() as logs:
        results = await await_hook_results(pm.hook.startup(config=Cfg()), timeout=0.05)
    assert results == ["good"]
    assert cancelled.is_set()
    by_event = {e["event"]: e for e in logs}
    assert by_event["plugin_hook_timeout"]["plugin"] == f"{__name__}.{Slow.startup.__qualname__}"
    failed = by_event["plugin_hook_failed"]
    assert failed["plugin"].endswith("Failing.startup")
    assert failed["error"] == "RuntimeError: cannot reach the license server"


async def test_await_hook_results_accepts_plain_values_and_futures() -> None:
    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    fut.set_result(7)
    assert await await_hook_results([1, None, fut], timeout=1) == [1, None, 7]


# ---- manager behaviour ---------------------------------------------------------------------------


def test_builtin_plugin_registers_the_four_kinds() -> None:
    got: dict[str, Any] = {}
    builtin.register_scrapers(lambda kind, factory: got.setdefault(kind, factory))
    assert set(got) == {"node", "generic", "dcgm", "promql"}
    assert all(callable(f) for f in got.values())


def test_builtin_scrapers_through_registry() -> None:
    pm = build_plugin_manager(load_entrypoints=False)
    assert pm.get_plugin("multicloud_collector.plugins.builtin") is builtin
    reg = Registry(pm)
    from multicloud_collector.scrape.dcgm import DcgmScraper
    from multicloud_collector.scrape.exposition import ExpositionScraper
    from multicloud_collector.scrape.promql import PromQLScraper

    assert isinstance(reg.scrapers["node"], ExpositionScraper) and reg.scrapers["node"].kind == "node"
    assert (
        isinstance(reg.scrapers["generic"], ExpositionScraper) and reg.scrapers["generic"].kind == "generic"
    )
    assert isinstance(reg.scrapers["dcgm"], DcgmScraper)
    assert isinstance(reg.scrapers["promql"], PromQLScraper)
    origin = reg.scraper_origin("dcgm")
    assert origin.package == BUILTIN_PACKAGE and origin.plugin_name == "multicloud_collector.plugins.builtin"
    assert "(builtin)" in str(origin)


def test_get_plugin_manager_is_cached_until_reset() -> None:
    reset_plugin_manager()
    try:
        a = get_plugin_manager(load_entrypoints=False)
        assert get_plugin_manager(load_entrypoints=False) is a
        reset_plugin_manager()
        assert get_plugin_manager(load_entrypoints=False) is not a
    finally:
        reset_plugin_manager()


def test_trace_plugins_logs_hook_calls() -> None:
    pm = build_plugin_manager(load_entrypoints=False, default_plugins=(), env={"MCC_TRACE_PLUGINS": "1"})

    class Plug:
        @hookimpl
        def extra_labels(self, ctx: TargetContext) -> dict[str, str]:
            return {"a": "b"}

    class Boom:
        @hookimpl
        def filter_series(self) -> bool:
            raise ValueError("bad filter")

    pm.register(Plug(), name="tracer")
    pm.register(Boom(), name="boom")
    with capture_logs() as logs:
        pm.hook.extra_labels(ctx=CTX)
        with pytest.raises(ValueError):
            pm.hook.filter_series(ctx=CTX, metric="m", labels=())
    events = [e["event"] for e in logs]
    assert events == ["plugin_hook_call", "plugin_hook_result", "plugin_hook_call", "plugin_hook_failed"]
    assert logs[0]["hook"] == "extra_labels" and logs[0]["plugins"] == ["tracer"]
    assert logs[1]["result"] == "[{'a': 'b'}]"
    untraced = build_plugin_manager(load_entrypoints=False, default_plugins=(), env={})
    with capture_logs() as logs:
        untraced.hook.extra_labels(ctx=CTX)
    assert logs == []


def test_registry_works_on_a_plain_pluggy_manager() -> None:
    from multicloud_collector.plugins import hookspecs

    plain = pluggy.PluginManager("multicloud_collector")
    plain.add_hookspecs(hookspecs)

    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("fake", FakeScraper)

    plain.register(Plug(), name="p")
    assert Registry(plain).scraper_origin("fake").package == "(registered at runtime)"


def test_wrapper_impls_are_not_called_as_registrations(pm: MccPluginManager) -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def register_scrapers(self) -> Any:
            return (yield)

    pm.register(Wrapper(), name="wrapper")
    assert Registry(pm).scrapers == {}


# ---- listing -------------------------------------------------------------------------------------


@dataclass
class Spec:
    name: str
    category: str
    capabilities: list[str]
    api_base_url: str = ""


@dataclass
class Account:
    provider: str


@dataclass
class Config:
    providers: list[Spec]
    accounts: list[Account]

    def enabled_accounts(self) -> list[Account]:
        return self.accounts


@pytest.fixture
def listing_registry(pm: MccPluginManager) -> Registry:
    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("fake", FakeScraper)

        @hookimpl
        def register_providers(self, register: Any) -> None:
            register(AcmeAdapter)

        @hookimpl
        def catalog_providers(self) -> list[dict[str, Any]]:
            return [
                {"name": "acme", "category": "gpu-cloud", "capabilities": {"dcgm": True, "billing": False}}
            ]

    pm.register(Plug(), name="listplug")
    pm.plugin_packages["listplug"] = ("mcc-listplug", "1.2.3")
    return Registry(pm)


def test_describe_plugins_rows(listing_registry: Registry) -> None:
    cfg = Config(
        providers=[
            Spec("lambdalabs", "gpu-cloud", ["prometheus", "dcgm"], "https://cloud.lambdalabs.com/api/v1"),
            Spec("hetzner", "general", []),
        ],
        accounts=[Account("lambdalabs")],
    )
    rows = describe_plugins(cfg, listing_registry)
    by_name = {(r["type"], r["name"]): r for r in rows}
    assert [r["type"] for r in rows] == ["provider", "provider", "provider", "adapter", "scrape_kind"]
    lam = by_name[("provider", "lambdalabs")]
    assert lam["enabled"] is True and lam["capabilities"] == ["prometheus", "dcgm"]
    assert lam["api_base_url"] == "https://cloud.lambdalabs.com/api/v1" and lam["adapter"] == ""
    assert lam["package"] == "providers.yaml"
    assert by_name[("provider", "hetzner")]["enabled"] is False
    acme = by_name[("provider", "acme")]
    assert (
        acme["adapter"] == "acme" and acme["capabilities"] == ["dcgm"] and acme["package"] == "mcc-listplug"
    )
    assert by_name[("adapter", "acme")]["package"] == "mcc-listplug 1.2.3"
    assert by_name[("scrape_kind", "fake")]["package"] == "mcc-listplug 1.2.3"

    text = format_table(rows)
    lines = text.splitlines()
    assert lines[0].split() == [
        "TYPE",
        "NAME",
        "CATEGORY",
        "CAPABILITIES",
        "ADAPTER",
        "ENABLED",
        "PACKAGE",
        "API_BASE_URL",
    ]
    assert len(lines) == 1 + len(rows)
    assert "prometheus,dcgm" in text and "yes" in text and "no" in text
    col = lines[0].index("PACKAGE")
    assert all(line[col - 2 : col] == "  " for line in lines[1:])  # columns are aligned


def test_describe_plugins_with_mapping_catalog_and_builtin_package(pm: MccPluginManager) -> None:
    class Plug:
        @hookimpl
        def register_scrapers(self, register: Any) -> None:
            register("fake", FakeScraper)

    pm.register(Plug(), name="b")
    pm.plugin_packages["b"] = (BUILTIN_PACKAGE, "0.1.0")
    reg = Registry(pm)
    cfg = {
        "catalog": {"runpod": {"category": "gpu-cloud", "capabilities": "prometheus", "enabled": False}},
        "accounts": [],
    }
    rows = describe_plugins(cfg, reg)
    assert rows[0] == {
        "type": "provider",
        "name": "runpod",
        "category": "gpu-cloud",
        "capabilities": ["prometheus"],
        "api_base_url": "",
        "adapter": "",
        "enabled": False,
        "package": "providers.yaml",
    }
    assert rows[1]["package"] == BUILTIN_PACKAGE
    bare = describe_plugins(object(), reg)
    assert [r["type"] for r in bare] == ["scrape_kind"]
    assert format_table([]).split() == [
        "TYPE",
        "NAME",
        "CATEGORY",
        "CAPABILITIES",
        "ADAPTER",
        "ENABLED",
        "PACKAGE",
        "API_BASE_URL",
    ]


def test_describe_plugins_unknown_usage_and_odd_capabilities(pm: MccPluginManager) -> None:
    @dataclass
    class Caps:
        prometheus: bool = True
        billing: bool = False

    cfg = {
        "providers": [{"name": "x", "capabilities": Caps()}, {"name": "y", "capabilities": 5}, {"name": ""}]
    }
    rows = describe_plugins(cfg, Registry(pm))
    assert [(r["name"], r["capabilities"], r["enabled"]) for r in rows] == [
        ("x", ["prometheus"], None),
        ("y", ["5"], None),
    ]
    assert "-" in format_table(rows)


@pytest.fixture(autouse=True)
def _no_cached_manager() -> Iterator[None]:
    yield
    reset_plugin_manager()
