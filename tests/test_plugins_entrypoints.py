"""Entry-point discovery for real: tiny distributions written to a temp dir and put on sys.path."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from multicloud_collector.plugins.manager import (
    PluginError,
    Registry,
    build_plugin_manager,
    get_plugin_manager,
    reset_plugin_manager,
)

PLUGIN_SOURCE = """
from multicloud_collector.plugins import hookimpl


class Scraper:
    kind = {kind!r}

    async def scrape(self, target, session):
        raise NotImplementedError


@hookimpl
def register_scrapers(register):
    register({kind!r}, Scraper)
"""


class Dists:
    """Writes installed-looking distributions (module + .dist-info) into one sys.path entry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def add(self, dist: str, version: str, *, kind: str, source: str | None = None) -> str:
        module = f"mcc_eptest_{uuid.uuid4().hex[:10]}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(source or PLUGIN_SOURCE.format(kind=kind)))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[multicloud_collector]\n{dist}-ep = {module}\n")
        self.modules.append(module)
        return module


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dists]:
    monkeypatch.delenv("MCC_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("MCC_TRACE_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))  # also invalidates import caches
    d = Dists(tmp_path)
    reset_plugin_manager()
    yield d
    reset_plugin_manager()
    for m in d.modules:
        sys.modules.pop(m, None)


def no_builtins() -> Registry:
    # Built-in kinds are covered in test_plugins; keep this test about entry points only.
    return Registry(build_plugin_manager(default_plugins=()))


def test_entry_point_plugin_is_discovered(dists: Dists) -> None:
    module = dists.add("mcc-eptest-alpha", "1.2.3", kind="alpha_kind")
    pm = get_plugin_manager()
    assert pm.get_plugin("mcc-eptest-alpha-ep") is sys.modules[module]
    assert pm.plugin_packages["mcc-eptest-alpha-ep"] == ("mcc-eptest-alpha", "1.2.3")

    reg = no_builtins()
    assert reg.scrapers["alpha_kind"].kind == "alpha_kind"
    origin = reg.scraper_origin("alpha_kind")
    assert (origin.plugin_name, origin.package, origin.version) == (
        "mcc-eptest-alpha-ep",
        "mcc-eptest-alpha",
        "1.2.3",
    )


def test_load_entrypoints_false_skips_third_party(dists: Dists) -> None:
    dists.add("mcc-eptest-off", "0.1", kind="off_kind")
    pm = build_plugin_manager(load_entrypoints=False, default_plugins=())
    assert pm.get_plugin("mcc-eptest-off-ep") is None


def test_mcc_load_plugins_restricts_to_named_distributions(
    dists: Dists, monkeypatch: pytest.MonkeyPatch
) -> None:
    dists.add("mcc-eptest-one", "1.0", kind="one_kind")
    dists.add("mcc-eptest-two", "2.0", kind="two_kind")

    monkeypatch.setenv("MCC_LOAD_PLUGINS", "mcc-eptest-two")
    reg = no_builtins()
    assert "two_kind" in reg.scrapers and "one_kind" not in reg.scrapers
    assert reg.scraper_origin("two_kind").package == "mcc-eptest-two"

    monkeypatch.setenv("MCC_LOAD_PLUGINS", " mcc_eptest_one , mcc-eptest-two ")  # normalized names, spaces
    assert {"one_kind", "two_kind"} <= set(no_builtins().scrapers)

    monkeypatch.setenv("MCC_LOAD_PLUGINS", "")
    assert no_builtins().scrapers == {}
    reset_plugin_manager()
    assert get_plugin_manager().get_plugin("mcc-eptest-one-ep") is None

    monkeypatch.setenv("MCC_LOAD_PLUGINS", "pluggy")  # installed, but not a multicloud_collector plugin
    with capture_logs() as logs:
        assert no_builtins().scrapers == {}
    assert [(e["event"], e["distribution"]) for e in logs] == [
        ("plugin_distribution_without_entry_points", "pluggy")
    ]

    monkeypatch.setenv("MCC_LOAD_PLUGINS", "mcc-eptest-missing")
    with pytest.raises(
        PluginError, match="MCC_LOAD_PLUGINS: distribution 'mcc-eptest-missing' is not installed"
    ):
        build_plugin_manager(default_plugins=())


def test_same_kind_from_two_distributions_names_both(dists: Dists) -> None:
    dists.add("mcc-eptest-left", "1.0", kind="clash_kind")
    dists.add("mcc-eptest-right", "2.0", kind="clash_kind")
    with pytest.raises(PluginError, match="scrape kind 'clash_kind' is registered twice") as exc:
        no_builtins()
    assert "mcc-eptest-left 1.0" in str(exc.value) and "mcc-eptest-right 2.0" in str(exc.value)


def test_plugin_that_fails_to_import_names_its_distribution(dists: Dists) -> None:
    dists.add("mcc-eptest-broken", "0.9", kind="x", source="import does_not_exist_anywhere_42\n")
    with pytest.raises(
        PluginError, match=r"'mcc-eptest-broken-ep' from mcc-eptest-broken 0.9 failed to load"
    ):
        build_plugin_manager(default_plugins=())


def test_plugin_with_misspelled_hook_fails_at_startup(dists: Dists) -> None:
    source = """
    from multicloud_collector.plugins import hookimpl

    @hookimpl
    def register_scraper(register):  # missing "s"
        pass
    """
    dists.add("mcc-eptest-typo", "0.1", kind="x", source=source)
    with pytest.raises(PluginError, match=r"'mcc-eptest-typo-ep' \(mcc-eptest-typo\b.*register_scraper"):
        build_plugin_manager(default_plugins=())


def test_plugin_with_wrong_hook_arguments_is_rejected(dists: Dists) -> None:
    source = """
    from multicloud_collector.plugins import hookimpl

    @hookimpl
    def extra_labels(ctx, target):  # "target" is not an argument of extra_labels
        return None
    """
    dists.add("mcc-eptest-args", "0.1", kind="x", source=source)
    with pytest.raises(PluginError, match=r"'mcc-eptest-args-ep' \(mcc-eptest-args\) is invalid"):
        build_plugin_manager(default_plugins=())
