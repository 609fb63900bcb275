"""Linode (Akamai Cloud) API v4 adapter: instances, type prices, balance, uninvoiced and invoice items."""

from multicloud_collector.providers.linode.adapter import LinodeAdapter

__all__ = ["LinodeAdapter"]
