"""The errors a refused webhook registration raises."""

from smsnodes_hub.errors import Conflict, InvalidRequest


class WebhookError(InvalidRequest):
    """A registration that cannot be accepted; the message is safe to show the caller."""


class TooManyWebhooks(Conflict, WebhookError):
    """The account has as many webhooks as it may (409, not WebhookError's 400)."""
