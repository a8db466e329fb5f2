"""Bus settings from the environment: the background fetch wait, the embedded bus's
retention (records and bytes)."""

from __future__ import annotations

import pytest

from schemas.bus_settings import BusSettings
from schemas.env import SettingError


def test_the_background_fetch_wait_defaults_to_100_ms_and_is_read_from_env() -> None:
    assert BusSettings.from_env({}).background_fetch_wait_ms == 100
    env = {"INFERQ_KAFKA_BACKGROUND_FETCH_WAIT_MS": "250"}
    assert BusSettings.from_env(env).background_fetch_wait_ms == 250


@pytest.mark.parametrize(("value", "says"), [
    ("0", "must be at least 1"),
    ("soon", "is not an integer"),
    ("60000", "must be at most 10000"),
])
def test_a_bad_background_fetch_wait_is_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(SettingError, match=says) as err:
        BusSettings.from_env({"INFERQ_KAFKA_BACKGROUND_FETCH_WAIT_MS": value})
    assert "INFERQ_KAFKA_BACKGROUND_FETCH_WAIT_MS" in str(err.value)


def test_the_embedded_retention_defaults_to_200k_records_and_is_read_from_env() -> None:
    assert BusSettings.from_env({}).embedded_max_records == 200_000
    env = {"INFERQ_EMBEDDED_MAX_RECORDS": "50000"}
    assert BusSettings.from_env(env).embedded_max_records == 50_000
    with pytest.raises(SettingError, match="INFERQ_EMBEDDED_MAX_RECORDS=999 must be at least"):
        BusSettings.from_env({"INFERQ_EMBEDDED_MAX_RECORDS": "999"})


def test_the_embedded_byte_bound_defaults_to_256_mib_and_is_read_from_env() -> None:
    assert BusSettings.from_env({}).embedded_max_bytes == 256 * 1024 * 1024
    env = {"INFERQ_EMBEDDED_MAX_BYTES": str(64 * 1024 * 1024)}
    assert BusSettings.from_env(env).embedded_max_bytes == 64 * 1024 * 1024
    env = {"INFERQ_EMBEDDED_MAX_BYTES": str(1024 * 1024)}  # the smallest allowed
    assert BusSettings.from_env(env).embedded_max_bytes == 1024 * 1024


@pytest.mark.parametrize(("value", "says"), [
    ("1048575", "=1048575 must be at least 1048576"),
    ("0", "=0 must be at least 1048576"),
    ("256MiB", "='256MiB' is not an integer"),
])
def test_a_bad_embedded_byte_bound_is_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(SettingError, match=says) as err:
        BusSettings.from_env({"INFERQ_EMBEDDED_MAX_BYTES": value})
    assert "INFERQ_EMBEDDED_MAX_BYTES" in str(err.value)
