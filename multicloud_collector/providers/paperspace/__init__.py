"""Paperspace API v1 adapter: machines, account standing and cost estimates (no amounts in the API)."""

from multicloud_collector.providers.paperspace.adapter import PaperspaceAdapter

__all__ = ["PaperspaceAdapter"]
