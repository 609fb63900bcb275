"""CoreWeave adapter: CKS clusters' nodes plus configured instance-type prices (see README.md)."""

from multicloud_collector.providers.coreweave.adapter import CoreWeaveAdapter

__all__ = ["CoreWeaveAdapter"]
