"""RunPod adapter: pods, balance and spend rate over GraphQL, per-pod usage from REST v1 billing."""

from multicloud_collector.providers.runpod.adapter import RunPodAdapter

__all__ = ["RunPodAdapter"]
