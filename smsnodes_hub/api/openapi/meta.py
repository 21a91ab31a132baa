"""GET /api/openapi.json: this document itself (served by serve.py)."""

from __future__ import annotations

from smsnodes_hub.api.openapi.builders import JSON, Json, curl, operation

TAG = {"name": "Meta", "description": "This description."}


def paths(base: str) -> Json:
    return {"/api/openapi.json": {"get": operation(
        "Meta", "getOpenApi", "This document",
        "The OpenAPI 3.1 description of this API. No authentication; cacheable (`ETag`, "
        "`If-None-Match`).",
        security=[],
        responses={
            "200": {"description": "The document.",
                    "headers": {"ETag": {"description": "The document's version.",
                                         "schema": {"type": "string"}}},
                    "content": {JSON: {"schema": {"type": "object", "required": ["openapi"],
                                                  "properties": {"openapi": {
                                                      "type": "string",
                                                      "pattern": r"^3\.1\.\d+$"}}}}}},
            "304": {"description": "Unchanged since the `ETag` given in `If-None-Match`."},
        },
        curl=curl(f"{base}/api/openapi.json", login=""),
    )}}
