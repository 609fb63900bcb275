"""Kubernetes API adapter: nodes with GPU capacity and placement labels (see README.md)."""

from multicloud_collector.providers.kubernetes.adapter import KubernetesAdapter

__all__ = ["KubernetesAdapter"]
