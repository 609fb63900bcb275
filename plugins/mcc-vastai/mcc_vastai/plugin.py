"""The entry point ``multicloud_collector: vastai = mcc_vastai.plugin`` loads this module."""

from __future__ import annotations

from collections.abc import Callable

from mcc_vastai.adapter import VastAiAdapter
from multicloud_collector.plugins.hookspecs import hookimpl


@hookimpl
def register_providers(register: Callable[[type], None]) -> None:
    register(VastAiAdapter)
