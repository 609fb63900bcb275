"""What the ClickHouse sink, the spool and the quarantine report beyond ``observe.Observer``.

A separate, optional protocol keeps ``observe.Observer`` (shared by every stage) unchanged:
``SelfMetrics`` implements both; anything else (a test fake, ``NullObserver``) is wrapped by
``delivery_observer`` so callers never need ``hasattr`` checks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class DeliveryObserver(Protocol):
    def insert_attempt(self, table: str, outcome: str, code: str) -> None:
        """One HTTP insert finished: outcome ``ok|retry|permanent|split``, code = exception code or ``-``."""

    def spool_event(self, event: str, count: int = 1) -> None:
        """Spool happenings: ``spooled_rows``, ``replayed_rows``, ``torn_record``, ``corrupt_record``,
        ``write_error``, ``blocked``."""

    def rows_quarantined(self, table: str, rows: int) -> None:
        """Rows the server rejected as data errors, written to the quarantine file."""

    def sink_alert(self, name: str, active: bool) -> None:
        """A condition that needs an operator (``permanent_error``, ``spool_unavailable``...)."""


class NullDeliveryObserver:
    def insert_attempt(self, table: str, outcome: str, code: str) -> None:
        pass

    def spool_event(self, event: str, count: int = 1) -> None:
        pass

    def rows_quarantined(self, table: str, rows: int) -> None:
        pass

    def sink_alert(self, name: str, active: bool) -> None:
        pass


def delivery_observer(obj: object) -> DeliveryObserver:
    return obj if isinstance(obj, DeliveryObserver) else NullDeliveryObserver()
