from __future__ import annotations

from bus.offsets import OffsetTracker

TP = ("requests", 0)


def test_commits_only_the_contiguous_handled_prefix() -> None:
    t = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.started(TP, off)
    t.finished(TP, 12)
    assert t.take_commits() == {}  # 10 and 11 still in flight
    t.finished(TP, 10)
    assert t.take_commits() == {TP: 11}
    t.finished(TP, 11)
    assert t.take_commits() == {TP: 13}  # 12 was already done
    assert t.take_commits() == {}  # nothing new
    t.finished(TP, 13)
    assert t.take_commits() == {TP: 14}
    assert t.in_flight() == 0


def test_partitions_are_independent_and_revocation_forgets() -> None:
    t = OffsetTracker()
    other = ("requests", 1)
    t.started(TP, 0)
    t.started(other, 5)
    t.finished(other, 5)
    assert t.take_commits() == {other: 6}
    t.forget([TP])
    t.finished(TP, 0)  # finished after losing the partition: nothing to commit
    assert t.take_commits() == {}
    assert t.in_flight() == 0
