"""Docker Engine adapter: containers and their GPU device requests over the unix socket (see README.md)."""

from multicloud_collector.providers.docker.adapter import DockerAdapter

__all__ = ["DockerAdapter"]
