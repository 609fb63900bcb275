"""Vultr API v2 adapter: instances and bare metal with plan prices, account balance and invoices."""

from multicloud_collector.providers.vultr.adapter import VultrAdapter

__all__ = ["VultrAdapter"]
