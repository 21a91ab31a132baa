"""The pieces every part of the OpenAPI document is built from, written once: schema
fragments, JSON bodies with named examples, error answers, parameters, curl samples and
the operation itself. Imports nothing of this package, so every module may import it."""

from __future__ import annotations

import json
from typing import Any

from smsnodes_hub.api.auth import AUTH_REQUIRED
from smsnodes_hub.api.body import TOO_LARGE
from smsnodes_hub.api.errors import DATABASE_UNAVAILABLE
from smsnodes_hub.api.pagination import DEFAULT_PER_PAGE, MAX_PAGE, MAX_PER_PAGE
from smsnodes_hub.api.send_sms import INVALID_CREDENTIALS, RATE_LIMITED

Json = dict[str, Any]
Example = tuple[str, str, Any]
"""A named Example Object: (name, summary, value)."""
ErrorExample = tuple[str, str]
"""An error example: (summary, the `error` text)."""

JSON = "application/json"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
NUMBER_PATTERN = r"^(\+[0-9]{6,15}|[0-9]{3,8})$"
# The hub's own error strings, beside the seed's (imported, so the examples follow the code;
# tests/api/test_openapi.py pins the seed's literally).
BASIC_NEEDED = "This needs the device password: use Authorization: Basic"
NOT_AN_OBJECT = "Request body must be a JSON object"
BAD_PER_PAGE: ErrorExample = (
    "Bad per_page", f"per_page must be a whole number from 1 to {MAX_PER_PAGE}")
BAD_SINCE: ErrorExample = ("Bad since", "since must be an ISO 8601 timestamp")


# -- Schemas ----------------------------------------------------------------------------------

def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def timestamp(description: str, *, nullable: bool = False) -> Json:
    """An ISO 8601 UTC timestamp ending in Z (format and pattern apply to strings only)."""
    return {
        "type": ["string", "null"] if nullable else "string",
        "format": "date-time",
        "pattern": TIMESTAMP_PATTERN,
        "description": description,
    }


def moment(description: str) -> Json:
    """A timestamp a caller sends: any ISO 8601 form; without an offset it is UTC."""
    return {"type": "string", "format": "date-time", "description": description}


def obj(properties: Json, required: list[str], description: str) -> Json:
    return {"type": "object", "description": description, "required": required,
            "properties": properties}


def list_of(item: str, description: str) -> Json:
    """`{"data": [...]}`: every item of a small collection."""
    return obj({"data": {"type": "array", "items": ref(item)}}, ["data"], description)


def page_of(item: str, *, order: str, total: str, description: str) -> Json:
    """One page of a paginated collection; `order` describes `data`, `total` the count."""
    return obj({
        "data": {"type": "array", "items": ref(item), "description": order},
        "page": {"type": "integer", "minimum": 1},
        "perPage": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
        "total": {"type": "integer", "minimum": 0, "description": total},
        "totalPages": {"type": "integer", "minimum": 0},
    }, ["data", "page", "perPage", "total", "totalPages"], description)


def gone(flag: str, description: str) -> Json:
    """The answer to a DELETE: `{"id": 5, "<flag>": true}`."""
    return obj({"id": {"type": "integer"}, flag: {"type": "boolean", "const": True}},
               ["id", flag], description)


def path_id(description: str, example: int) -> Json:
    """A component parameter: the `{id}` of a path."""
    return {"name": "id", "in": "path", "required": True, "description": description,
            "schema": {"type": "integer", "minimum": 1}, "example": example}


# -- Bodies and answers -----------------------------------------------------------------------

def examples(*items: Example) -> Json:
    """Named Example Objects from (name, summary, value)."""
    return {name: {"summary": summary, "value": value} for name, summary, value in items}


def json_body(schema: Json, *items: Example) -> Json:
    """A `content` map: JSON of `schema`, with the given examples."""
    media: Json = {"schema": schema}
    if items:
        media["examples"] = examples(*items)
    return {JSON: media}


def request(description: str, schema: str, *items: Example, required: bool = True) -> Json:
    """A JSON request body of the component schema `schema`."""
    return {"required": required, "description": description,
            "content": json_body(ref(schema), *items)}


def ok(description: str, schema: str, *items: Example, headers: Json | None = None) -> Json:
    """A successful JSON answer of the component schema `schema`."""
    response: Json = {"description": description}
    if headers:
        response["headers"] = headers
    response["content"] = json_body(ref(schema), *items)
    return response


def error(description: str, *items: ErrorExample, headers: Json | None = None) -> Json:
    """An error response: `{"error": "..."}`, with each (summary, message) as an example."""
    named = [(f"example{n}", summary, {"error": message})
             for n, (summary, message) in enumerate(items, 1)]
    response: Json = {"description": description, "content": json_body(ref("Error"), *named)}
    if headers:
        response["headers"] = headers
    return response


def not_found(description: str, message: str) -> Json:
    return error(description, ("Not found", message))


def too_large(*, headers: Json | None = None) -> Json:
    return error("The body is over 64 KiB.", ("Too large", TOO_LARGE), headers=headers)


def header(name: str) -> Json:
    return {"$ref": f"#/components/headers/{name}"}


def param(name: str) -> Json:
    return {"$ref": f"#/components/parameters/{name}"}


def query(name: str, description: str, schema: Json, example: Any) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "example": example}


def period(what: str) -> list[Json]:
    """The `since` and `until` filters: only `what` (e.g. "SMS received") in that period."""
    return [
        query("since", f"Only {what} at or after this moment (ISO 8601).",
              moment("A moment."), "2026-11-21T00:00:00Z"),
        query("until", f"Only {what} before this moment (ISO 8601).",
              moment("A moment."), "2026-11-22T00:00:00Z"),
    ]


def pages(per_page: str) -> list[Json]:
    """The `page` and `per_page` parameters; `per_page` describes the latter."""
    return [
        query("page", "The page, from 1. Past the last page `data` is empty.",
              {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1}, 1),
        query("per_page", per_page,
              {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
               "default": DEFAULT_PER_PAGE}, 50),
    ]


def page(data: list[Any], *, per_page: int, total: int, total_pages: int) -> Json:
    """An example page of page 1."""
    return {"data": data, "page": 1, "perPage": per_page, "total": total,
            "totalPages": total_pages}


EMPTY_PAGE: Example = ("empty", "Nothing matches",
                       page([], per_page=DEFAULT_PER_PAGE, total=0, total_pages=0))

RATE_HEADERS = {name: header(name) for name in
                ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")}
RETRY_AFTER = {"Retry-After": header("Retry-After")}
NO_STORE = {"Cache-Control": header("Cache-Control-No-Store")}
BASIC_OR_BEARER: list[Json] = [{"basicAuth": []}, {"bearerAuth": []}]
BASIC_ONLY: list[Json] = [{"basicAuth": []}]


def auth_errors(*, password_only: bool = False) -> Json:
    """401, 429 and 503: what every authenticated extension endpoint can answer."""
    if password_only:
        unauthorized = error(
            "No Basic header (a Bearer token cannot create tokens), or wrong credentials.",
            ("No Basic header", BASIC_NEEDED),
            ("Wrong username or password", INVALID_CREDENTIALS),
        )
    else:
        unauthorized = error(
            "No credentials, wrong credentials, or a revoked or outdated token.",
            ("No Authorization header", AUTH_REQUIRED),
            ("Wrong password, unknown user or token", INVALID_CREDENTIALS),
            headers={"WWW-Authenticate": header("WWW-Authenticate")},
        )
    return {
        "401": unauthorized,
        "429": error("Too many failed logins from this client address: locked out for "
                     "`Retry-After` seconds.", ("Locked out", RATE_LIMITED),
                     headers=RETRY_AFTER),
        "503": error("The database cannot be reached; retry after `Retry-After` seconds.",
                     ("Database down", DATABASE_UNAVAILABLE), headers=RETRY_AFTER),
    }


# -- curl samples -----------------------------------------------------------------------------

PHONE_LOGIN = "-u 'shop-phone-1:correct horse'"
TOKEN_LOGIN = "-H 'Authorization: Bearer snh_...'"  # noqa: S105 - a placeholder


def compact(value: Json) -> str:
    """JSON on one line with a space after separators (never inside strings), for curl."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def curl(url: str, *, method: str = "", login: str = PHONE_LOGIN, data: Json | None = None,
         data_apart: bool = False) -> str:
    """One curl command: `method` (GET when empty), `login` (none when empty), the URL
    (quoted when it has a query), and `data` as a JSON body (`data_apart`: `-d` on a line
    of its own)."""
    words = ["curl -sS", *([f"-X {method}"] if method else []), *([login] if login else []),
             f"'{url}'" if "?" in url else url]
    command = " ".join(words)
    if data is not None:
        command += (" \\\n  -H 'Content-Type: application/json'"
                    + (" \\\n  " if data_apart else " ") + f"-d '{compact(data)}'")
    return command


# -- Operations -------------------------------------------------------------------------------

def operation(tag: str, operation_id: str, summary: str, description: str, *,
              responses: Json, curl: str, parameters: list[Json] | None = None,
              body: Json | None = None, security: list[Json] | None = None) -> Json:
    """An Operation Object with its curl sample. Without `security` it takes Basic or Bearer
    and answers `auth_errors()` besides `responses`; with it, `responses` are all."""
    op: Json = {"tags": [tag], "operationId": operation_id, "summary": summary,
                "description": description,
                "security": BASIC_OR_BEARER if security is None else security}
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = body
    op["responses"] = responses if security is not None else {**responses, **auth_errors()}
    op["x-codeSamples"] = [{"lang": "Shell", "label": "curl", "source": curl}]
    return op
