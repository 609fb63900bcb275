"""Lambda Cloud API v1 adapter (provider name ``lambda``): instances, type prices and cost estimates."""

from multicloud_collector.providers.lambda_cloud.adapter import LambdaAdapter

__all__ = ["LambdaAdapter"]
