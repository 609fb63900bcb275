"""Registers the Lambda Cloud adapter through the same hook third-party adapters use."""

from __future__ import annotations

from collections.abc import Callable

from multicloud_collector.plugins.hookspecs import hookimpl


@hookimpl
def register_providers(register: Callable[[type], None]) -> None:
    from multicloud_collector.providers.lambda_cloud.adapter import LambdaAdapter

    register(LambdaAdapter)
