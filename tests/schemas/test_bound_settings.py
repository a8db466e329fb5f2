"""The memory and disk bounds of every service, from the environment: their defaults, the
smallest value allowed, and bad values refused with the variable's name."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.settings import IngestSettings
from notifier.settings import NotifierSettings
from runner.settings import RunnerSettings
from schemas.bus_settings import BusSettings
from schemas.env import SettingError

MIB = 1024 * 1024

#: (settings class, variable, field, default, smallest allowed)
BOUNDS: list[tuple[Any, str, str, int, int]] = [
    (BusSettings, "INFERQ_EMBEDDED_MAX_RECORDS", "embedded_max_records", 200_000, 1000),
    (BusSettings, "INFERQ_EMBEDDED_MAX_BYTES", "embedded_max_bytes", 256 * MIB, MIB),
    (IngestSettings, "INFERQ_RESULTS_CACHE_BYTES", "results_cache_bytes", 256 * MIB, MIB),
    (NotifierSettings, "INFERQ_NOTIFIER_BOOK_BYTES", "book_bytes", 256 * MIB, MIB),
    (RunnerSettings, "INFERQ_RUNNER_CACHE_MAX_BYTES", "cache_max_bytes", 20 * 1024 * MIB, MIB),
    (RunnerSettings, "INFERQ_RUNNER_MAX_MODEL_BYTES", "max_model_bytes", 2 * 1024 * MIB, 1024),
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


def test_the_model_base_url_is_an_http_url_or_unset() -> None:
    assert IngestSettings.from_env({}).model_base_url == ""
    url = "https://models.internal:8443/store"
    assert IngestSettings.from_env({"INFERQ_MODEL_BASE_URL": url}).model_base_url == url
    for bad in ("/srv/models", "s3://bucket/models", "http://"):
        with pytest.raises(SettingError, match=f"INFERQ_MODEL_BASE_URL='{bad}' is not an "
                                               "http\\(s\\) URL with a host"):
            IngestSettings.from_env({"INFERQ_MODEL_BASE_URL": bad})
