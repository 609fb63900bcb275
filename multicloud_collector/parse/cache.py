"""Per-target cache of parsed series, keyed by the series text exactly as it appears in a line.

This is the trick Prometheus' scrape loop uses: exporters print the same series text every
scrape, so after the first scrape a sample line costs a dict lookup plus ``float()`` instead of
a label parse, a sort and a hash. The key is the decoded ``str`` of the series text (metric name
and label block) rather than its raw bytes: the body is decoded once for UTF-8 validation anyway
and ``str`` keys avoid a second copy per line. Either way the key is the raw text, so a key only
ever maps to the series that this exact text parses to.

Memory stays bounded when targets churn series: two generations of dicts. Lookups hit the young
generation; a miss there promotes the entry from the old one. Every ``rotate_every`` scrapes the
young generation becomes the old one and the old one is dropped, so an entry unseen for
``2 * rotate_every`` scrapes is gone. A hard ``max_entries`` rotates early for extreme churn.
"""

from __future__ import annotations

from collections.abc import Callable

from multicloud_collector.model import ScrapeLimits, Series
from multicloud_collector.normalize.series import series_id
from multicloud_collector.parse.errors import ExpositionError

SeriesFilter = Callable[[str, tuple[tuple[str, str], ...]], bool]


class SeriesCache:
    """One per target. Maps series text to its ``Series`` (or ``None`` when filtered out)."""

    def __init__(
        self,
        target: str,
        extra_labels: tuple[tuple[str, str], ...] = (),
        series_filter: SeriesFilter | None = None,
        *,
        rotate_every: int = 4,
        max_entries: int = 1_000_000,
    ) -> None:
        self.target = target
        self.extra_labels = tuple(sorted(extra_labels))
        self._extra_names = frozenset(name for name, _ in self.extra_labels)
        self.series_filter = series_filter
        self.rotate_every = max(1, rotate_every)
        self.max_entries = max_entries
        self.young: dict[str, Series | None] = {}
        self.old: dict[str, Series | None] = {}
        # Comment lines: "# TYPE" line -> (family, type); other comments -> None; "# EOF" -> EOF.
        self.comments: dict[str, tuple[str, str] | None] = {}
        self.old_comments: dict[str, tuple[str, str] | None] = {}
        self._scrapes = 0
        self._limits: ScrapeLimits | None = None

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def begin_scrape(self, limits: ScrapeLimits) -> None:
        """Called by the parser before each scrape; rotates generations when due."""
        if limits != self._limits:
            # Entries were validated against the old limits; start over rather than trust them.
            self.young, self.old, self._limits = {}, {}, limits
            self.comments, self.old_comments = {}, {}
        self._scrapes += 1
        if self._scrapes % self.rotate_every == 0 or len(self.young) > self.max_entries:
            self.old, self.young = self.young, {}
            self.old_comments, self.comments = self.comments, {}

    def build(
        self, metric: str, labels: list[tuple[str, str]], lineno: int, limits: ScrapeLimits
    ) -> Series | None:
        """Validate scraped labels, merge extra labels, filter and hash: the cold path."""
        if limits.labels_per_series and len(labels) > limits.labels_per_series:
            raise ExpositionError(
                "label_limit",
                f"metric {metric!r} has {len(labels)} labels, limit is {limits.labels_per_series}",
                lineno,
            )
        name_limit = limits.label_name_length
        value_limit = limits.label_value_length
        seen: set[str] = set()
        for name, value in labels:
            if name.startswith("__"):
                raise ExpositionError(
                    "parse", f"metric {metric!r}: label name {name!r} is reserved (starts with '__')", lineno
                )
            if name in seen:
                raise ExpositionError("parse", f"metric {metric!r}: duplicate label name {name!r}", lineno)
            seen.add(name)
            if name_limit and len(name) > name_limit:
                raise ExpositionError(
                    "label_name_length",
                    f"metric {metric!r}: label name {name[:64]!r} is {len(name)} chars, limit {name_limit}",
                    lineno,
                )
            if value_limit and len(value) > value_limit // 4 and len(value.encode()) > value_limit:
                raise ExpositionError(
                    "label_value_length",
                    f"metric {metric!r}: value of label {name!r} is {len(value.encode())} bytes, "
                    f"limit {value_limit}",
                    lineno,
                )
        merged = self._merge(labels, seen)
        if self.series_filter is not None and not self.series_filter(metric, merged):
            return None
        return Series(metric, merged, series_id(self.target, metric, merged))

    def _merge(self, labels: list[tuple[str, str]], names: set[str]) -> tuple[tuple[str, str], ...]:
        """Extra (target) labels win; a clashing scraped label is kept as ``exported_<name>``.

        This is the opposite of Prometheus' ``honor_labels: false`` only in wording: there too
        the target label wins and the scraped one is renamed. Extra labels carry attribution
        (customer, account, instance) that a target must not be able to forge.
        """
        if not self.extra_labels:
            return tuple(sorted(labels))
        extra_names = self._extra_names
        out: dict[str, str] = {}
        for name, value in labels:
            if name in extra_names:
                new = "exported_" + name
                while new in names or new in extra_names or new in out:
                    new = "exported_" + new
                out[new] = value
            else:
                out[name] = value
        out.update(self.extra_labels)
        return tuple(sorted(out.items()))
