"""Bus settings from the environment: the background fetch wait, the producer's linger,
the embedded bus's retention (records and bytes)."""

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


def test_the_kafka_linger_defaults_to_0_and_is_read_from_env() -> None:
    assert BusSettings.from_env({}).kafka_linger_ms == 0
    assert BusSettings.from_env({"INFERQ_KAFKA_LINGER_MS": "2"}).kafka_linger_ms == 2
    assert BusSettings.from_env({"INFERQ_KAFKA_LINGER_MS": "1000"}).kafka_linger_ms == 1000


@pytest.mark.parametrize(("value", "says"), [
    ("-1", "must be at least 0"),
    ("abc", "is not an integer"),
    ("1001", "must be at most 1000"),
])
def test_a_bad_kafka_linger_is_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(SettingError, match=says) as err:
        BusSettings.from_env({"INFERQ_KAFKA_LINGER_MS": value})
    assert "INFERQ_KAFKA_LINGER_MS" in str(err.value)
