"""DigitalOcean API v2 adapter: Droplets (GPU Droplets included) with size prices, balance and invoices."""

from multicloud_collector.providers.digitalocean.adapter import DigitalOceanAdapter

__all__ = ["DigitalOceanAdapter"]
