"""One webhook attempt: a signed POST through the shared URL guard, classified.

Only 2xx is success. Timeouts, connection errors, 5xx, 408 and 429 are worth another
attempt (with the receiver's ``Retry-After`` when it gives one); every other answer is
final, 3xx included: redirects are never followed, since the target they name has not
passed the guard. At most ``_MAX_ANSWER_BYTES`` of an answer are read.
"""

from __future__ import annotations

import email.utils
import time

import aiohttp

from notifier.errors import DeliveryFailed, DeliveryRetry
from notifier.signing import signature_header
from outbound.errors import UrlRefused
from outbound.urlguard import check_url, guarded_connector

_MAX_ANSWER_BYTES = 64 * 1024
_RETRY_STATUSES = {408, 429}


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` of delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class WebhookSender:
    def __init__(self, *, allow_private: bool, timeout_s: float) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=guarded_connector(self._allow_private, limit=256),
            timeout=self._timeout, auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, url: str, webhook_id: str, body: bytes, secrets: list[str]) -> int:
        """POST once; the status on 2xx, else DeliveryRetry or DeliveryFailed."""
        assert self._session is not None, "sender not started"
        try:
            await check_url(url, self._allow_private)
        except UrlRefused as exc:
            raise DeliveryFailed(f"refused by the URL guard: {exc}", refused=True) from None
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "inferq-notifier",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(secrets, webhook_id, timestamp, body),
        }
        try:
            async with self._session.post(url, data=body, headers=headers,
                                          allow_redirects=False) as resp:
                await resp.content.read(_MAX_ANSWER_BYTES)
                status = resp.status
                after = retry_after_s(resp.headers.get("retry-after"))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, UrlRefused):
                raise DeliveryFailed(f"refused by the URL guard: {exc.os_error}",
                                     refused=True) from None
            raise DeliveryRetry(f"cannot connect: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryRetry(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRY_STATUSES:
            raise DeliveryRetry(f"HTTP {status}", status, after)
        if 300 <= status < 400:
            raise DeliveryFailed(f"HTTP {status}: redirects are not followed", status)
        raise DeliveryFailed(f"HTTP {status}", status, gone=status == 410)
