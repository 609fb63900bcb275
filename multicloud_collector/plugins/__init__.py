"""Plugin system: hook specifications, the plugin manager and the built-in plugins."""

from multicloud_collector.plugins.hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
