"""Storage sinks: encoding rows, batching them per table, and writing them to ClickHouse."""

from multicloud_collector.sink.base import EncodedBatch, Sink, SinkError
from multicloud_collector.sink.batcher import Batcher

__all__ = ["Batcher", "EncodedBatch", "Sink", "SinkError"]
