"""Series identity and label-name hygiene.

``series_id`` gives ClickHouse a number to sort and join on instead of a label map. It must be
stable across processes and versions (Python's ``hash`` is salted, so it is not usable) and
unambiguous: every field is length-prefixed, so no choice of label values can make two different
series encode to the same bytes.
"""

from __future__ import annotations

import re
from hashlib import blake2b

_PERSON = b"mcc-series-v1"  # domain separation: changing the encoding means changing this tag
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def _put(parts: list[bytes], text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    parts.append(len(data).to_bytes(4, "little"))
    parts.append(data)


def series_id(target: str, metric: str, labels: tuple[tuple[str, str], ...]) -> int:
    """Stable unsigned 64-bit id of one series of one target (fits ClickHouse ``UInt64``).

    ``labels`` is hashed in the order given; callers pass the sorted tuple of ``Series.labels``.
    """
    parts: list[bytes] = []
    _put(parts, target)
    _put(parts, metric)
    parts.append(len(labels).to_bytes(4, "little"))
    for name, value in labels:
        _put(parts, name)
        _put(parts, value)
    digest = blake2b(b"".join(parts), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "little")


def sanitize_label_name(name: str) -> str:
    """Turn any string into a valid Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``).

    Invalid characters become ``_``; a leading digit gets a ``_`` prefix; the empty string
    becomes ``_``. Used for names that come from configuration, cloud tags or PromQL results,
    never for names from a parsed exposition (those are validated, not rewritten).
    """
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    if not cleaned:
        return "_"
    if cleaned[0].isdigit():
        return "_" + cleaned
    return cleaned
