"""Registers the Docker adapter through the same hook a third-party plugin uses."""

from __future__ import annotations

from collections.abc import Callable

from multicloud_collector.plugins.hookspecs import hookimpl
from multicloud_collector.providers.docker.adapter import DockerAdapter


@hookimpl
def register_providers(register: Callable[[type], None]) -> None:
    register(DockerAdapter)
