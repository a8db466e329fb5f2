"""Ingest settings from the environment: defaults, values, and bad values named."""

from __future__ import annotations

import pytest

from ingest.settings import IngestSettings
from schemas.env import SettingError

MIB = 1024 * 1024


def test_results_cache_bytes_default_and_value() -> None:
    assert IngestSettings.from_env({}).results_cache_bytes == 256 * MIB
    assert IngestSettings().results_cache_bytes == 256 * MIB
    s = IngestSettings.from_env({"INFERQ_RESULTS_CACHE_BYTES": str(64 * MIB)})
    assert s.results_cache_bytes == 64 * MIB
    # The count bound is its own setting, unchanged beside it.
    assert s.results_cache == 200_000
    assert IngestSettings.from_env({"INFERQ_RESULTS_CACHE_BYTES": str(MIB)}
                                   ).results_cache_bytes == MIB


@pytest.mark.parametrize("raw", ["1048575", "0", "-1", "lots", "1.5e9"])
def test_results_cache_bytes_bad_values_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingError, match="INFERQ_RESULTS_CACHE_BYTES"):
        IngestSettings.from_env({"INFERQ_RESULTS_CACHE_BYTES": raw})
