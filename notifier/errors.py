from __future__ import annotations


class NotifierError(Exception):
    """Base of notifier errors."""

    status_code = 500
    retriable = False


class DeliveryRetry(NotifierError, ConnectionError):
    """An attempt failed in a way another attempt may fix (timeout, 5xx, 408, 429)."""

    retriable = True

    def __init__(self, message: str, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class DeliveryFailed(NotifierError, ValueError):
    """An attempt failed for good (other 4xx, a redirect, a refused URL)."""

    def __init__(self, message: str, status: int | None = None, gone: bool = False,
                 refused: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.gone = gone
        self.refused = refused
