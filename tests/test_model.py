from multicloud_collector.model import SampleBlock, Series, TargetContext


def test_block_materializes_rows_in_order() -> None:
    ctx = TargetContext("c1", "vultr", "a1", "a1/node/x", "node", "exposition")
    series = [Series("up", (("job", "n"),), 7), Series("x", (), 9)]
    block = SampleBlock(ctx, 1_700_000_000_000, series, [1.0, 2.5], [0, 0])
    rows = list(block.samples())
    assert [(r.metric, r.value, r.series_id) for r in rows] == [("up", 1.0, 7), ("x", 2.5, 9)]
    assert rows[0].labels == {"job": "n"} and rows[0].customer == "c1"
    assert len(block) == 2
