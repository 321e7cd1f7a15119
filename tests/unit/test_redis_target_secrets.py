"""A Redis URL that carries a password is refused without being echoed in the error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts import RedisTarget


@pytest.mark.parametrize(
    "url", ["redis://:s3cret-pw@127.0.0.1:6379/0", "http://user:s3cret-pw@127.0.0.1:6379"]
)
def test_url_with_a_password_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RedisTarget(name="eu", url=url)
    assert "s3cret" not in str(refused.value)
    assert "username/password" in str(refused.value)
