"""OVHcloud adapter: Public Cloud instances, bills and current usage via signed requests (see README.md)."""

from multicloud_collector.providers.ovhcloud.adapter import OvhCloudAdapter

__all__ = ["OvhCloudAdapter"]
