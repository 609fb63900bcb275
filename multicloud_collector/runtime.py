"""Building the long-lived parts from a config: the shared HTTP session, the sink, the batcher.

Shared by ``mcc run``, ``mcc collect --once`` and ``mcc demo`` so that all three write the same
way. There is exactly one ``aiohttp.ClientSession`` per process (connection pooling, one DNS
cache, one place for limits).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from multicloud_collector import __version__
from multicloud_collector.config import Config
from multicloud_collector.observe import Observer
from multicloud_collector.sink.base import Sink
from multicloud_collector.sink.batcher import Batcher


class SinkUnavailableError(RuntimeError):
    """The configured sink kind cannot be used in this build."""


def make_session(config: Config) -> aiohttp.ClientSession:
    """The one client session: bounded connections, no cookies, gzip handled by aiohttp."""
    connector = aiohttp.TCPConnector(
        limit=max(config.collector.max_concurrency * 2, 16),
        limit_per_host=0,
        ttl_dns_cache=300,
        enable_cleanup_closed=True,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": f"multicloud-collector/{__version__}"},
        auto_decompress=True,
        trust_env=False,
    )


def make_sink(
    config: Config,
    observer: Observer,
    *,
    migrate: bool = True,
    session: aiohttp.ClientSession | None = None,
) -> Sink:
    """The configured sink; ``session`` is the shared one (a ClickHouse sink makes its own without it)."""
    kind = config.sink.kind
    if kind == "embedded":
        from multicloud_collector.sink.embedded import EmbeddedSink

        emb = config.sink.embedded
        return EmbeddedSink(Path(emb.path), database=emb.database, observer=observer, migrate=migrate)
    if kind == "clickhouse" and config.sink.clickhouse is not None:
        from multicloud_collector.sink.clickhouse import ClickHouseSink
        from multicloud_collector.sink.quarantine import Quarantine
        from multicloud_collector.sink.spool import Spool

        ch, sp, q = config.sink.clickhouse, config.sink.spool, config.sink.quarantine
        state_dir = config.collector.state_dir
        spool = Spool(
            sp.directory(state_dir),
            max_bytes=sp.max_bytes,
            segment_bytes=sp.segment_bytes,
            policy=sp.policy,
            observer=observer,
        )
        return ClickHouseSink(
            ch.url,
            database=ch.database,
            user=ch.user,
            password=ch.password,
            ca_file=ch.ca_file,
            verify=ch.verify,
            timeout=ch.timeout,
            compression=ch.compression,
            cluster=ch.cluster,
            spool=spool,
            quarantine=Quarantine(q.directory(state_dir), max_bytes=q.max_bytes, observer=observer),
            session=session,
            observer=observer,
            migrate=migrate,
            retry_initial=ch.retry_initial,
            retry_max=ch.retry_max,
            replay_rate=sp.replay_rate,
        )
    raise SinkUnavailableError(
        f"sink.kind: {kind!r} is not available in this version; use sink.kind: embedded"
    )


def make_batcher(config: Config, sink: Sink, observer: Observer) -> Batcher:
    b = config.sink.batch
    return Batcher(
        sink,
        max_rows=b.max_rows,
        max_bytes=b.max_bytes,
        max_age=b.max_age,
        max_buffer_bytes=b.max_buffer_bytes,
        observer=observer,
        spool=getattr(sink, "spool", None),
    )
