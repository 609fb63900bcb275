"""Meta-tests keeping hooks, their documentation and their tests in step (datasette's pattern)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from multicloud_collector.plugins import hookspecs
from multicloud_collector.plugins.manager import build_plugin_manager

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "plugin_hooks.md").read_text(encoding="utf-8")
PM = build_plugin_manager(load_entrypoints=False, default_plugins=())
HOOKS = sorted(name for name in dir(PM.hook) if not name.startswith("_"))


def test_every_hookspec_is_collected() -> None:
    declared = sorted(
        name for name, fn in vars(hookspecs).items() if hasattr(fn, "multicloud_collector_spec")
    )
    assert declared == HOOKS
    assert len(HOOKS) == 7


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_are_documented(hook: str) -> None:
    caller = getattr(PM.hook, hook)
    assert caller.spec is not None
    signature = f"{hook}({', '.join(caller.spec.argnames)})"
    assert f"## {signature}\n" in DOC, f"docs/plugin_hooks.md needs a heading '## {signature}'"


def test_documented_hooks_exist() -> None:
    documented = re.findall(r"^## (\w+)\(", DOC, flags=re.MULTILINE)
    assert sorted(documented) == HOOKS


def test_doc_signatures_match_the_python_signatures() -> None:
    for hook in HOOKS:
        params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        assert f"## {hook}({', '.join(params)})" in DOC


@pytest.mark.parametrize("hook", HOOKS)
def test_plugin_hooks_have_tests(hook: str) -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((ROOT / "tests").glob("test_plugins*.py"))
    )
    assert re.search(rf"^(async )?def test_hook_{hook}\b", sources, flags=re.MULTILINE), (
        f"no test_hook_{hook}"
    )
