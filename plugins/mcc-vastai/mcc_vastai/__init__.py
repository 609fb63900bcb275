"""Vast.ai adapter for multicloud-collector, shipped as a separate distribution (a plugin template)."""

from mcc_vastai.adapter import VastAiAdapter

__all__ = ["VastAiAdapter"]
__version__ = "0.1.0"
