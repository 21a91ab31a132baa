"""A message's life in PostgreSQL: the queue SQL, send rules, idempotency, retries,
segments, phone numbers and inbound SMS."""
