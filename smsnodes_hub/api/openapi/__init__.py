"""The OpenAPI 3.1 description of every HTTP endpoint, served at GET /api/openapi.json.

Plain Python data and the one source of truth: the /docs page is generated from the same
`document()`, so every operation carries a summary, a description, described parameters,
request and response examples and a curl sample (`x-codeSamples`). tests/api/test_openapi.py
keeps it true: every route is documented, every example validates against its schema, and
live responses of the hub validate too.

The modules, each importing only those above it (no cycle):

- `builders`: the pieces everything is built from (operations, bodies, errors, curl);
- `schemas`, `webhook_schemas`, `components`: the document's `components`;
- `events`: what the hub POSTs to webhooks (the document's `webhooks`);
- one module per group of paths, each with its tag and `paths(base)`: `send_sms`,
  `health`, `messages`, `tokens`, `device`, `inbound`, `webhooks`, `meta`;
- `spec`: `document()`, the whole; `serve`: the handler of GET /api/openapi.json.
"""

from __future__ import annotations

from smsnodes_hub.api.openapi.serve import get_openapi
from smsnodes_hub.api.openapi.spec import document

__all__ = ["document", "get_openapi"]
