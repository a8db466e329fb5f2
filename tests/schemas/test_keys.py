from __future__ import annotations

import re

from schemas.keys import key_hash, key_id_of, matches, new_key


def test_keys_have_the_documented_shape_and_verify_by_hash() -> None:
    key_id, key = new_key()
    assert re.fullmatch(r"pk-[0-9a-f]{8}-[0-9a-f]{32}", key)
    assert key_id_of(key) == key_id
    stored = key_hash(key)
    assert key not in stored and matches(key, stored)
    assert not matches(key[:-1] + "x", stored)
    assert key_id_of("pk-xxxxxxxx-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") is None
    assert new_key()[1] != key
