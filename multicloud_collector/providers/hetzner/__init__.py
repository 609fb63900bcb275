"""Hetzner Cloud API v1 adapter: servers, per-location list prices and cost estimates (no billing API)."""

from multicloud_collector.providers.hetzner.adapter import HetznerAdapter

__all__ = ["HetznerAdapter"]
