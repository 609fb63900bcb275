"""A simulated multi-cloud GPU fleet (dcgm-exporter, node_exporter, Prometheus API) for ``mcc demo``."""

from __future__ import annotations

from multicloud_collector.demo.fleet import FleetSimulator
from multicloud_collector.demo.hosts import SimGpu, SimHost

__all__ = ["FleetSimulator", "SimGpu", "SimHost"]
