from __future__ import annotations

import os
import uuid

import pytest

from obs.random_ids import random_bytes, traceparent, uuid4
from obs.tracing import parse_traceparent


def test_uuids_are_version_4_and_never_repeat_across_pool_refills() -> None:
    ids = [uuid4() for _ in range(2000)]  # 32 KB of randomness: eight refills
    assert len(set(ids)) == len(ids)
    for s in ids:
        u = uuid.UUID(s)
        assert str(u) == s and u.version == 4 and u.variant == uuid.RFC_4122


def test_traceparents_are_well_formed_and_fresh() -> None:
    seen = {traceparent() for _ in range(500)}
    assert len(seen) == 500
    for tp in seen:
        assert parse_traceparent(tp) is not None and tp.endswith("-01")


def test_pool_bytes_are_handed_out_once_and_bounded() -> None:
    chunks = [random_bytes(1000) for _ in range(10)]
    assert len({c for c in chunks}) == 10 and all(len(c) == 1000 for c in chunks)
    with pytest.raises(ValueError, match="1 to 4096"):
        random_bytes(4097)
    with pytest.raises(ValueError, match="1 to 4096"):
        random_bytes(0)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    uuid4()  # the pool is filled in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent, then out
        os.write(write, uuid4().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != uuid4()
