"""The memory bounds of every service, from the environment: their defaults, the
smallest value allowed, and bad values refused with the variable's name."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.settings import IngestSettings
from notifier.settings import NotifierSettings
from schemas.bus_settings import BusSettings
from schemas.env import SettingError

MIB = 1024 * 1024

#: (settings class, variable, field, default, smallest allowed)
BOUNDS: list[tuple[Any, str, str, int, int]] = [
    (BusSettings, "INFERQ_EMBEDDED_MAX_RECORDS", "embedded_max_records", 200_000, 1000),
    (BusSettings, "INFERQ_EMBEDDED_MAX_BYTES", "embedded_max_bytes", 256 * MIB, MIB),
    (IngestSettings, "INFERQ_RESULTS_CACHE_BYTES", "results_cache_bytes", 256 * MIB, MIB),
    (NotifierSettings, "INFERQ_NOTIFIER_BOOK_BYTES", "book_bytes", 256 * MIB, MIB),
]


@pytest.mark.parametrize(("cls", "name", "field", "default", "minimum"), BOUNDS)
def test_a_bound_has_its_default_and_is_read_down_to_its_minimum(
    cls: Any, name: str, field: str, default: int, minimum: int,
) -> None:
    assert getattr(cls.from_env({}), field) == getattr(cls(), field) == default
    assert getattr(cls.from_env({name: str(minimum)}), field) == minimum


@pytest.mark.parametrize(("cls", "name", "field", "default", "minimum"), BOUNDS)
def test_a_bad_bound_is_refused_by_name(
    cls: Any, name: str, field: str, default: int, minimum: int,
) -> None:
    for raw, says in ((str(minimum - 1), f"must be at least {minimum}"),
                      ("0", f"must be at least {minimum}"), ("256MiB", "is not an integer")):
        with pytest.raises(SettingError, match=f"{name}=.*{says}"):
            cls.from_env({name: raw})
