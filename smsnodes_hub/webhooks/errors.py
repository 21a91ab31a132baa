"""The errors a refused webhook registration raises."""


class WebhookError(Exception):
    """A registration that cannot be accepted; the message is safe to show the caller."""


class TooManyWebhooks(WebhookError):
    pass
