"""Webhooks: registration rules, the safety of targets, Standard Webhooks signatures, event
payloads, and the worker that drains the outbox (`webhook_deliveries`).

The outbox rows are written by the statements that change state (sql/004, `emit_webhook_event`)
and hold references only. A delivery is built at send time and made as soon as it is due:
the message text and numbers are decrypted with the account's data key when this process
has it (while the account's phone is connected here or its owner authenticated recently,
keyring.py), and left out, saying so, when it has not. The signing secret has a second
seal under the hub's webhook key (sql/012), so any event can be signed.

The modules: errors.py (what a refused registration raises), events.py (the event names),
targets.py (where a webhook may point, which certificates it may show), signing.py
(secrets, signatures, event ids), hubkey.py (the hub's webhook key), secret_source.py
(which copy of a secret signs a delivery), store.py (the Webhook record and its SQL),
payloads.py (the event bodies) and delivery.py (the worker). The names callers use are
re-exported here."""

from smsnodes_hub.webhooks.delivery import DeliveryWorker, backoff
from smsnodes_hub.webhooks.errors import TooManyWebhooks, WebhookError
from smsnodes_hub.webhooks.events import EVENTS, check_events
from smsnodes_hub.webhooks.signing import event_id, new_secret, sign
from smsnodes_hub.webhooks.store import (
    DELIVERY_STATES,
    MAX_WEBHOOKS,
    Webhook,
    create,
    delete_webhook,
    describe_attempts,
    get_webhook,
    list_deliveries,
    list_webhooks,
    update_webhook,
)
from smsnodes_hub.webhooks.targets import MAX_URL, address_allowed, check_url, ip_literal

__all__ = [
    "DELIVERY_STATES",
    "EVENTS",
    "MAX_URL",
    "MAX_WEBHOOKS",
    "DeliveryWorker",
    "TooManyWebhooks",
    "Webhook",
    "WebhookError",
    "address_allowed",
    "backoff",
    "check_events",
    "check_url",
    "create",
    "delete_webhook",
    "describe_attempts",
    "event_id",
    "get_webhook",
    "ip_literal",
    "list_deliveries",
    "list_webhooks",
    "new_secret",
    "sign",
    "update_webhook",
]
