from __future__ import annotations


class IngestError(Exception):
    """Base of every error ingest answers over HTTP."""

    status_code = 500
    code = "internal_error"
    retriable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(IngestError, ValueError):
    status_code = 400
    code = "invalid_request"


class Unauthorized(IngestError, PermissionError):
    status_code = 401
    code = "unauthorized"


class Forbidden(IngestError, PermissionError):
    status_code = 403
    code = "forbidden"


class NotFound(IngestError, LookupError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(IngestError, ValueError):
    status_code = 413
    code = "invalid_request"


class Overloaded(IngestError):
    """Too many calls waiting; the client should retry after ``retry_after_s``."""

    status_code = 503
    code = "overloaded"
    retriable = True

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(IngestError):
    status_code = 503
    code = "unavailable"
    retriable = True


class RateLimited(IngestError):
    """The key's token bucket for this class of call is empty."""

    status_code = 429
    code = "rate_limited"
    retriable = True

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
