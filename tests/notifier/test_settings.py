"""Notifier settings from the environment: the event book's byte bound."""

from __future__ import annotations

import pytest

from notifier.settings import NotifierSettings
from schemas.env import SettingError


def test_the_book_byte_bound_defaults_to_256_mib_and_is_read_from_env() -> None:
    assert NotifierSettings().book_bytes == NotifierSettings.from_env({}).book_bytes
    assert NotifierSettings.from_env({}).book_bytes == 256 * 1024 * 1024
    env = {"INFERQ_NOTIFIER_BOOK_BYTES": str(64 * 1024 * 1024)}
    assert NotifierSettings.from_env(env).book_bytes == 64 * 1024 * 1024
    env = {"INFERQ_NOTIFIER_BOOK_BYTES": str(1024 * 1024)}  # the smallest allowed
    assert NotifierSettings.from_env(env).book_bytes == 1024 * 1024


@pytest.mark.parametrize(("value", "says"), [
    ("1048575", "=1048575 must be at least 1048576"),
    ("0", "=0 must be at least 1048576"),
    ("256MiB", "='256MiB' is not an integer"),
])
def test_a_bad_book_byte_bound_is_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(SettingError, match=says) as err:
        NotifierSettings.from_env({"INFERQ_NOTIFIER_BOOK_BYTES": value})
    assert "INFERQ_NOTIFIER_BOOK_BYTES" in str(err.value)
