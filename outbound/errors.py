from __future__ import annotations


class UrlRefused(PermissionError):
    """The URL guard refused a URL or an address before any connection was made.

    Not retriable: the same URL resolves the same way on the next attempt. Services
    wrap it in their own error types where they need a ``status_code``.
    """

    retriable = False
