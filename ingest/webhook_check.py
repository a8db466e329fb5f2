"""Which webhook a submitted request carries, checked at the front door.

The URL's syntax is checked here with the shared outbound guard so a bad URL is a 400
now; its addresses are checked by the notifier at every delivery (DNS can change).
"""

from __future__ import annotations

from bus.registry_view import RegistryView
from ingest.errors import BadRequest
from outbound.errors import UrlRefused
from outbound.urlguard import check_url_syntax
from schemas.registry import TaskRecord
from schemas.submit_api import WebhookSpec
from schemas.webhooks import WebhookTarget

MAX_URL_LENGTH = 2048


def check_webhook_url(url: str) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise BadRequest(f"webhook.url is longer than {MAX_URL_LENGTH} characters")
    try:
        check_url_syntax(url)
    except UrlRefused as exc:
        raise BadRequest(f"webhook.url is not usable: {exc}") from None


def webhook_for(registry: RegistryView, account: str, spec: WebhookSpec | None,
                task: TaskRecord) -> WebhookTarget | None:
    """The request's own webhook, else its task's default, else None."""
    target = spec.target() if spec is not None else task.webhook
    if target is None:
        return None
    check_webhook_url(target.url)
    if account not in registry.webhook_secrets:
        raise BadRequest("webhooks need a signing secret for this account: create one with "
                         f"POST /admin/accounts/{account}/webhook-secret")
    return target
