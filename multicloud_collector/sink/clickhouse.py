"""``sink.kind: clickhouse``: HTTP inserts that neither lose nor duplicate rows.

How the pieces fit:

* The batcher calls ``insert`` while the spool is empty. A batch is cut at UTC midnight (one
  atomic block per partition) and POSTed with its deterministic deduplication token.
* Any failure other than bad rows makes ``insert`` raise a retryable ``SinkError``; the batcher
  then hands the batch to ``spool`` (fsynced) and moves on. While the spool holds anything, new
  batches go straight behind it, so order is kept.
* One replayer task drains the spool in order, paced to ``replay_rate`` rows/s, and removes a
  batch only after the server acknowledged it. Transient errors back off exponentially with jitter
  (``retry_initial`` → ``retry_max``), forever while there is spool room. Permanent errors (auth,
  missing table) keep the data and retry at ``retry_max`` with an alert, so fixing the server or
  the credentials recovers without a restart.
* Data errors bisect the batch: good rows are written under child tokens derived from the
  parent's, bad rows go to the quarantine file.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence

import aiohttp
import structlog

from multicloud_collector.migrations import Migration, MigrationReport, apply_migrations
from multicloud_collector.observe import NullObserver, Observer
from multicloud_collector.secrets import Secret
from multicloud_collector.sink.base import EncodedBatch, SinkError
from multicloud_collector.sink.batch_split import halves, rows_of, split_by_day
from multicloud_collector.sink.clickhouse_http import ClickHouseHttp, InsertError
from multicloud_collector.sink.errors import Action, Classified
from multicloud_collector.sink.events import DeliveryObserver, delivery_observer
from multicloud_collector.sink.quarantine import Quarantine
from multicloud_collector.sink.server_version import ServerVersionError, at_least, parse_server_version
from multicloud_collector.sink.spool import Spool, SpoolError

log = structlog.get_logger(__name__)

MIN_SERVER_VERSION = (23, 8)  # oldest LTS with every feature the schema uses (docs/operations.md)
OVERLOAD_CODES = frozenset({202, 241, 252})  # back off for longer than a network blip
OVERLOAD_MIN_DELAY = 30.0
SPLIT_BUDGET = 256  # requests per batch spent on bisection before the rest is quarantined whole


class ClickHouseSink:
    """The ``Sink`` for a ClickHouse server. ``spool`` is what the batcher hands failed batches to."""

    reports_writes = True  # rows_written is reported here, per part actually written

    def __init__(
        self,
        url: str,
        *,
        database: str = "mcc",
        user: str = "default",
        password: Secret | None = None,
        ca_file: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        compression: str = "none",
        cluster: str | None = None,
        spool: Spool,
        quarantine: Quarantine,
        session: aiohttp.ClientSession | None = None,
        observer: Observer | None = None,
        migrate: bool = True,
        migrations: Sequence[Migration] | None = None,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        replay_rate: float = 100_000.0,
    ) -> None:
        self.url = url
        self.database = database
        self.cluster = cluster
        self.spool = spool
        self.quarantine = quarantine
        self.observer: Observer = observer if observer is not None else NullObserver()
        self.events: DeliveryObserver = delivery_observer(observer)
        self.migrate = migrate
        self.migrations = migrations
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.replay_rate = replay_rate
        self._session = session
        self._own_session = session is None
        self._http_args = {
            "database": database,
            "user": user,
            "password": password,
            "ca_file": ca_file,
            "verify": verify,
            "timeout": timeout,
            "gzip_level": 1 if compression == "gzip" else None,
        }
        self.http: ClickHouseHttp | None = None
        self.migration_report: MigrationReport | None = None
        self._state = "starting"
        self._ready = False
        self._prepare_lock = asyncio.Lock()
        self._replayer: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._next_slot = 0.0
        self.last_error: str = ""

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool and start replaying; never fails because the server is down."""
        if self._session is None:  # one-shot CLI use; the daemon passes its shared session
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        self.http = ClickHouseHttp(self._session, self.url, **self._http_args)  # type: ignore[arg-type]
        try:
            await self.spool.open()
        except SpoolError as exc:
            self.events.sink_alert("spool_unavailable", True)
            log.error("spool_unavailable", dir=str(self.spool.directory), error=str(exc), reason=exc.reason)
        with contextlib.suppress(InsertError):
            await self._prepare()
        if self._state == "starting":
            self._state = "spooling" if self.spool.backlog else "writing"
        self._replayer = asyncio.create_task(self._replay_loop(), name="mcc-clickhouse-replay")

    async def close(self) -> None:
        self._stop.set()
        if self._replayer is not None:
            self._replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replayer
            self._replayer = None
        await self.spool.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
        self._state = "down"

    def state(self) -> str:
        """``writing`` | ``spooling`` (draining a backlog) | ``retrying`` | ``starting`` | ``down``."""
        return self._state

    async def _prepare(self) -> None:
        """Probe the server (version, known settings) and migrate once; raises ``InsertError``."""
        if self._ready:
            return
        assert self.http is not None
        async with self._prepare_lock:
            if self._ready:
                return
            try:
                info = await self.http.probe()
            except SinkError as exc:
                raise self._as_insert_error(exc) from None
            try:
                old = not at_least(parse_server_version(info.version), *MIN_SERVER_VERSION)
            except ServerVersionError:
                old = True
            if old:
                log.warning(
                    "clickhouse_version_unsupported",
                    version=info.version,
                    minimum=".".join(map(str, MIN_SERVER_VERSION)),
                )
            if self.migrate:
                try:
                    self.migration_report = await apply_migrations(
                        self.http.execute, self.database, self.migrations, cluster=self.cluster
                    )
                except SinkError as exc:
                    raise self._as_insert_error(exc) from None
                except Exception as exc:  # MigrationError: inserts will say what is missing
                    log.error("clickhouse_migration_failed", error=str(exc))
            self._ready = True
            log.info(
                "clickhouse_connected",
                url=self.http.shown_url,
                version=info.version,
                settings=sorted(info.settings),
            )

    @staticmethod
    def _as_insert_error(exc: SinkError) -> InsertError:
        action = Action.RETRY if exc.retryable else Action.PERMANENT
        return InsertError(
            Classified(action, exc.code, "", f"code_{exc.code}" if exc.code else "connection"), str(exc)
        )

    # -- the Sink protocol --------------------------------------------------------------------

    async def insert(self, batch: EncodedBatch) -> None:
        """Write now or raise a retryable ``SinkError`` (the batcher then spools the batch)."""
        try:
            await self._deliver(batch)
        except InsertError as err:
            self._failed(err)
            raise SinkError(str(err), retryable=True, code=err.classified.code) from None
        if not self.spool.backlog:
            self._ok()

    async def execute(self, sql: str) -> str:
        await self._prepare_or_raise()
        assert self.http is not None
        return await self.http.execute(sql)

    async def query(self, sql: str, fmt: str = "PrettyCompact") -> bytes:
        await self._prepare_or_raise()
        assert self.http is not None
        return await self.http.query(sql, fmt)

    async def _prepare_or_raise(self) -> None:
        if self.http is None:
            raise SinkError("the ClickHouse sink is not started", retryable=True)
        try:
            await self._prepare()
        except InsertError as err:
            raise SinkError(
                str(err), retryable=err.action is Action.RETRY, code=err.classified.code
            ) from None

    # -- delivery -----------------------------------------------------------------------------

    async def _deliver(self, batch: EncodedBatch) -> None:
        try:
            await self._prepare()
        except InsertError as err:  # server unreachable or refusing us: counted like an insert attempt
            self.events.insert_attempt(batch.table, err.action.value, err.code_label)
            self.observer.sink_error(batch.table, err.code_label)
            raise
        budget = [SPLIT_BUDGET]
        for part in split_by_day(batch):
            await self._insert_or_bisect(part, budget)

    async def _insert_or_bisect(self, batch: EncodedBatch, budget: list[int]) -> None:
        assert self.http is not None
        started = time.perf_counter()
        try:
            await self.http.insert(batch.table, batch.body, batch.token)
        except InsertError as err:
            self.events.insert_attempt(batch.table, err.action.value, err.code_label)
            self.observer.sink_error(batch.table, err.code_label)
            if err.action is not Action.SPLIT:
                raise
            budget[0] -= 1
            parts = halves(batch) if budget[0] > 0 else None
            if parts is None:
                await self.quarantine.add(
                    batch.table, batch.token, rows_of(batch.body), code=err.classified.code, error=str(err)
                )
                return
            log.warning("insert_bisect", table=batch.table, rows=batch.rows, code=err.classified.code)
            for part in parts:
                await self._insert_or_bisect(part, budget)
            return
        self.events.insert_attempt(batch.table, "ok", "-")
        self.observer.rows_written(batch.table, batch.rows, len(batch.body), time.perf_counter() - started)

    def _failed(self, err: InsertError) -> None:
        self._state = "retrying"
        self.last_error = str(err)
        if err.action is Action.PERMANENT:
            self.events.sink_alert("permanent_error", True)
            if self.http is not None:
                self.http.forget()  # re-probe after the fix (settings may have changed too)
            self._ready = False

    def _ok(self) -> None:
        if self._state == "retrying":
            log.info("clickhouse_recovered", url=self.http.shown_url if self.http else "")
        self.events.sink_alert("permanent_error", False)
        self.last_error = ""
        self._state = "spooling" if self.spool.backlog else "writing"

    # -- replay -------------------------------------------------------------------------------

    def _delay(self, err: InsertError, attempt: int) -> float:
        if err.action is Action.PERMANENT:
            return self.retry_max
        cap = min(self.retry_max, self.retry_initial * (2 ** min(attempt, 30)))
        delay = random.uniform(cap / 2, cap)
        if err.classified.code in OVERLOAD_CODES:
            delay = max(delay, min(OVERLOAD_MIN_DELAY, self.retry_max))
        return delay

    async def _pace(self, rows: int) -> None:
        if self.replay_rate <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + rows / self.replay_rate
        if slot > now:
            await asyncio.sleep(slot - now)

    async def _replay_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            if not self.spool.opened:
                await asyncio.sleep(self.retry_max)  # the spool could not be opened: nothing to replay
                continue
            await self.spool.wait_backlog()
            rec = await self.spool.peek()
            if rec is None:
                self._state = "writing" if self._state == "spooling" else self._state
                continue
            await self._pace(rec.batch.rows)
            try:
                await self._deliver(rec.batch)
            except InsertError as err:
                await self.spool.done(rec, delivered=False)
                self._failed(err)
                delay = self._delay(err, attempt)
                attempt += 1
                log.warning(
                    "insert_retry",
                    table=rec.batch.table,
                    rows=rec.batch.rows,
                    action=err.action.value,
                    code=err.classified.code,
                    attempt=attempt,
                    delay=round(delay, 2),
                    error=str(err),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                continue
            except asyncio.CancelledError:
                await asyncio.shield(self.spool.done(rec, delivered=False))
                raise
            await self.spool.done(rec, delivered=True)
            attempt = 0
            self._ok()
