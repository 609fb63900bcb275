from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from multicloud_collector.normalize.series import sanitize_label_name, series_id
from multicloud_collector.parse.series_text import METRIC_NAME_RE


def test_series_id_is_stable_and_fits_uint64() -> None:
    sid = series_id("t", "up", (("job", "node"),))
    assert sid == series_id("t", "up", (("job", "node"),))
    assert 0 <= sid < 2**64
    # Pinned: a change of encoding would silently split every stored series in two.
    assert sid == 14788866554985750624


def test_series_id_is_unambiguous() -> None:
    assert series_id("t", "m", (("a", "b,c=d"),)) != series_id("t", "m", (("a", "b"), ("c", "d")))
    assert series_id("ta", "m", ()) != series_id("t", "am", ())
    assert series_id("t", "m", (("a", ""),)) != series_id("t", "m", ())
    assert series_id("t1", "m", ()) != series_id("t2", "m", ())


@given(st.text(), st.text(), st.lists(st.tuples(st.text(), st.text()), max_size=4))
def test_series_id_never_fails(target: str, metric: str, labels: list[tuple[str, str]]) -> None:
    assert 0 <= series_id(target, metric, tuple(labels)) < 2**64


def test_sanitize_label_name_examples() -> None:
    assert sanitize_label_name("env") == "env"
    assert sanitize_label_name("k8s.io/zone") == "k8s_io_zone"
    assert sanitize_label_name("9lives") == "_9lives"
    assert sanitize_label_name("") == "_"
    assert sanitize_label_name("ünïcode") == "_n_code"


@given(st.text())
def test_sanitize_label_name_always_valid(name: str) -> None:
    out = sanitize_label_name(name)
    assert METRIC_NAME_RE.fullmatch(out) and ":" not in out
    assert sanitize_label_name(out) == out
