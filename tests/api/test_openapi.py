"""GET /api/openapi.json (the api/openapi/ package) stays true: it is valid OpenAPI 3.1, documents
every /api/ route and nothing else, every example validates against its schema, and live
responses of a real hub validate against the documented schemas."""

from __future__ import annotations

import asyncio
import base64
import re
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from smsnodes_hub import webhooks
from smsnodes_hub.api.openapi import document, events, schemas, serve, webhook_schemas
from smsnodes_hub.api.openapi.components import components
from tests.support import PASSWORD, add_account, add_device, ws_url
from tests.webhooks.receiver import LOCAL
from tests.wsclient import RawPhone

DOC_URI = "urn:smsnodes-hub:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
NUMBER = "+1234567890"
OTHER = "+0987654321"
Json = dict[str, Any]


# -- Helpers ----------------------------------------------------------------------------------

def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def pointer(*parts: str) -> str:
    return "".join("/" + _escape(p) for p in parts)


def _closed(node: Any) -> Any:
    """The document with every object schema closed (`additionalProperties: false`): the
    published schemas stay open for extensions, but an example or a live response with an
    undocumented field is drift, and fails here."""
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: v if k in ("example", "examples") else _closed(v) for k, v in node.items()}
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class Schemas:
    """Validates instances against the schema at a JSON pointer of the document, with its
    local `$ref`s resolved through a `referencing` registry (Draft 2020-12)."""

    def __init__(self, doc: Json) -> None:
        resource = DRAFT202012.create_resource(_closed(doc))
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)

    def errors(self, at: str, instance: Any) -> list[str]:
        validator = Draft202012Validator(
            {"$ref": f"{DOC_URI}#{quote(at, safe='/~')}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in validator.iter_errors(instance)]


def examples_in(node: Any, at: str = "") -> Iterator[tuple[str, str, Any]]:
    """(where, pointer of its schema, value) for every example of the document: `example`
    and `examples` of media types, parameters and headers, and `examples` of schemas."""
    if isinstance(node, list):
        for n, item in enumerate(node):
            yield from examples_in(item, f"{at}/{n}")
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("schema"), dict):  # media type, parameter or header object
        if "example" in node:
            yield at + "/example", at + "/schema", node["example"]
        for name, example in node.get("examples", {}).items():
            yield f"{at}/examples/{_escape(name)}", at + "/schema", example["value"]
    else:  # a schema: JSON Schema's `examples`, or OpenAPI's deprecated `example`
        for n, value in enumerate(node.get("examples", [])):
            yield f"{at}/examples/{n}", at, value
        if "example" in node:
            yield at + "/example", at, node["example"]
    for key, value in node.items():
        if key not in ("example", "examples"):
            yield from examples_in(value, f"{at}/{_escape(key)}")


def operations(doc: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _resolve(doc: Json, node: Json) -> Json:
    """Follow local `$ref`s (components/parameters, headers...)."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def error_examples(operation: Json, status: str) -> set[str]:
    media = operation["responses"][status]["content"]["application/json"]
    return {example["value"]["error"] for example in media["examples"].values()}


# -- The document -----------------------------------------------------------------------------

def test_webhook_additions_do_not_shadow_a_schema() -> None:
    """components.py merges the schemas of two modules into the document's."""
    assert not webhook_schemas.schemas().keys() & schemas.schemas().keys()
    assert components()["schemas"] == {**schemas.schemas(), **webhook_schemas.schemas()}
    assert set(document()["webhooks"]) == set(events.events()) == set(webhooks.EVENTS)


def test_document_is_valid_openapi_3_1() -> None:
    for doc in (document(), document("https://sms.example.com/")):
        assert doc["openapi"].startswith("3.1.")
        validate_spec(doc)
    assert document("https://sms.example.com/")["servers"] == [
        {"url": "https://sms.example.com", "description": "This hub."}]
    # Plain data: it survives JSON as it is.
    assert orjson.loads(orjson.dumps(document())) == document()


def test_every_example_validates_against_its_schema() -> None:
    doc = document()
    schemas = Schemas(doc)
    found = list(examples_in(doc))
    assert len(found) > 60  # the walk really reaches the examples
    failures = {where: errs for where, at, value in found if (errs := schemas.errors(at, value))}
    assert not failures, failures


def test_schemas_are_not_vacuous() -> None:
    """Validation proves something only if the schemas refuse wrong data."""
    doc = document()
    schemas = Schemas(doc)
    message = "/components/schemas/Message"
    good = doc["paths"]["/api/messages/{id}"]["get"]["responses"]["200"]["content"][
        "application/json"]["examples"]["delivered"]["value"]
    assert schemas.errors(message, good) == []
    for bad in ({**good, "status": "lost"}, {**good, "createdAt": "2026-11-21 10:00"},
                {**good, "surprise": 1}, {k: v for k, v in good.items() if k != "id"},
                {**good, "recipients": [{**good["recipients"][0], "to": "call me"}]}):
        assert schemas.errors(message, bad), bad


def test_error_code_is_optional() -> None:
    """Error bodies may carry a machine-readable `code`; the SMS Nodes body without one
    stays valid."""
    doc = document()
    schemas = Schemas(doc)
    error = "/components/schemas/Error"
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    assert schemas.errors(error, {"error": "Message 123 not found"}) == []
    assert schemas.errors(error, {"error": "Message 123 not found", "code": "not_found"}) == []
    assert schemas.errors(error, {"error": "Message 123 not found", "code": 404})


def test_every_operation_is_documented_for_people() -> None:
    """What the /docs page needs: summaries, descriptions, examples, curl samples."""
    doc = document()
    ids = set()
    for path, method, op in operations(doc):
        where = f"{method.upper()} {path}"
        for key in ("summary", "description", "operationId", "tags", "security",
                    "x-codeSamples"):
            assert op.get(key) is not None, (where, key)
        ids.add(op["operationId"])
        for param in op.get("parameters", []):
            assert _resolve(doc, param).get("description"), (where, param)
        if "requestBody" in op:
            media = op["requestBody"]["content"]["application/json"]
            assert media.get("examples"), where
        for status, response in op["responses"].items():
            response = _resolve(doc, response)
            assert response.get("description"), (where, status)
            media = response.get("content", {}).get("application/json")
            if media is None or path == "/api/openapi.json":
                continue
            assert media.get("examples"), (where, status)
            if status[0] in "45" and path != "/api/health":  # health's 503 is a Health
                assert media["schema"] == {"$ref": "#/components/schemas/Error"}, (where, status)
        for status in op["responses"].keys() & {"429", "503"}:
            assert "Retry-After" in op["responses"][status]["headers"], (where, status)
    assert len(ids) == len(list(operations(doc)))


def test_curl_samples_send_bodies_that_validate() -> None:
    """Every `-d '...'` of a curl sample is JSON that the operation's schema accepts."""
    doc = document()
    schemas = Schemas(doc)
    checked = 0
    for path, method, op in operations(doc):
        for sample in op["x-codeSamples"]:
            words = shlex.split(sample["source"], comments=True)
            assert words[0] == "curl"
            assert any(w.startswith("http://localhost:3000/api/") for w in words), sample
            for n, word in enumerate(words):
                if word != "-d":
                    continue
                at = pointer("paths", path, method, "requestBody", "content",
                             "application/json", "schema")
                errors = schemas.errors(at, orjson.loads(words[n + 1]))
                assert not errors, (path, method, errors)
                checked += 1
    assert checked >= 4


def test_send_sms_keeps_the_seed_contract() -> None:
    doc = document()
    op = doc["paths"]["/api/send-sms"]["post"]
    assert op["security"] == [{}, {"basicAuth": []}, {"bearerAuth": []}]
    seed = op["requestBody"]["content"]["application/json"]["examples"]["seed"]["value"]
    assert seed == {"deviceUsername": "your_device_name", "password": "your_device_password",
                    "phoneNumbers": ["+1234567890", "+0987654321"],
                    "message": "Hello from SMS Nodes!", "priority": 1}
    schemas = doc["components"]["schemas"]
    assert schemas["SendSmsResponse"]["required"] == [
        "message", "messageId", "deviceOnline", "sentImmediately"]
    assert schemas["SendSmsResponse"]["properties"]["message"]["enum"] == [
        "SMS queued successfully", "SMS scheduled successfully"]
    assert set(schemas["SendSmsRequest"]["properties"]) == {
        "deviceUsername", "password", "phoneNumbers", "message", "priority", "scheduledAt",
        "expiresAt", "ttl"}
    assert set(schemas["Health"]["required"]) == {
        "status", "timestamp", "ssl", "encryption", "connectedDevices"}
    assert {"Username and password are required"} <= error_examples(op, "400")
    assert error_examples(op, "401") == {"Invalid credentials"}
    assert error_examples(op, "429") == {"Rate limit exceeded"}
    assert error_examples(op, "503") == {"Database unavailable"}
    assert error_examples(op, "500") == {"Database error", "Internal server error"}
    assert set(op["responses"]) == {
        "200", "400", "401", "405", "409", "413", "429", "500", "503"}
    for status in op["responses"]:
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
            op["responses"][status]["headers"]), status
    assert [p["$ref"] for p in op["parameters"]] == ["#/components/parameters/Idempotency-Key"]
    assert doc["components"]["securitySchemes"] == {
        "basicAuth": {**doc["components"]["securitySchemes"]["basicAuth"], "type": "http",
                      "scheme": "basic"},
        "bearerAuth": {**doc["components"]["securitySchemes"]["bearerAuth"], "type": "http",
                       "scheme": "bearer"},
    }
    assert "/ws/device" in doc["info"]["description"]
    assert "docs/protocol.md" in doc["info"]["description"]


# -- Against the running hub ------------------------------------------------------------------

# Routes of the app that the OpenAPI document leaves out on purpose, each with its reason;
# every other route must be documented. A new route outside /api/ fails the test until it is
# documented or listed here.
UNDOCUMENTED_ROUTES = {
    "/ws/device": "the phones' WebSocket: device protocol v1, in docs/protocol.md",
    "/metrics": "Prometheus metrics for the operator's scraper, not an API for scripts",
    "/docs": "the human-readable page that renders this very document",
    "/dashboard": "the operator's web UI (HTML pages, cookie sessions), not a JSON API",
}


def _excluded(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/")
               for prefix in UNDOCUMENTED_ROUTES)


async def test_every_route_is_documented_and_every_documented_route_exists(hub) -> None:
    routes, left_out = set(), set()
    for route in hub.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":  # HEAD: added by aiohttp to each GET
            continue
        path = resource.canonical
        if _excluded(path):
            left_out.add(path)
        else:
            routes.add((route.method.lower(), path))
    documented = {(method, path) for path, method, _op in operations(document())}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations with no route"
    assert {"/ws/device", "/metrics", "/docs"} <= left_out  # each exclusion is in use


async def test_openapi_json_is_served_without_auth_and_cacheable(hub) -> None:
    resp = await hub.get("/api/openapi.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "max-age" in resp.headers["Cache-Control"]
    body = await resp.json()
    assert re.fullmatch(r"3\.1\.\d+", body["openapi"])
    assert body == document()
    again = await hub.get("/api/openapi.json",
                          headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304 and again.headers["ETag"] == resp.headers["ETag"]
    assert serve.served()[1] == resp.headers["ETag"]


class Live:
    """Calls the hub and checks each answer against the document: its status must be
    documented for the operation, its body must validate, and its documented integer
    headers, when present, must be integers."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.doc = document()
        self.schemas = Schemas(self.doc)
        self.checked: set[tuple[str, str, int]] = set()

    async def call(self, method: str, template: str, status: int, *,
                   path: str | None = None, **kwargs: Any) -> tuple[Any, ClientResponse]:
        resp = await self.client.request(method, path or template, **kwargs)
        body = await resp.json()
        assert resp.status == status, (method, path or template, resp.status, body)
        responses = self.doc["paths"][template][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {template}: {status} is not documented"
        at = pointer("paths", template, method.lower(), "responses", str(status), "content",
                     "application/json", "schema")
        errors = self.schemas.errors(at, body)
        assert not errors, (method, template, status, body, errors)
        for name, header in responses[str(status)].get("headers", {}).items():
            schema = _resolve(self.doc, header)["schema"]
            if name in resp.headers and schema.get("type") == "integer":
                assert resp.headers[name].isdigit(), (name, resp.headers[name])
        self.checked.add((method.upper(), template, status))
        return body, resp


def basic(username: str = "shop-phone-1", password: str = PASSWORD) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def test_live_responses_validate_against_the_document(make_hub, receiver) -> None:
    hub = await make_hub(**LOCAL)
    live = Live(hub)
    doc = live.doc
    await add_device(hub, "shop-phone-1")
    await live.call("GET", "/api/health", 200)
    # A webhook on a real receiver: the events of everything below reach it.
    hook, _ = await live.call("POST", "/api/webhooks", 201, headers=basic(), json={
        "url": receiver.url("/live"),
        "events": ["sms.received", "message.delivered", "message.failed"]})
    receiver.secrets["/live"] = hook["secret"]

    # The seed's request, with a real device's credentials.
    sent, resp = await live.call("POST", "/api/send-sms", 200, json={
        "deviceUsername": "shop-phone-1", "password": PASSWORD,
        "phoneNumbers": [NUMBER, OTHER], "message": "Hello from SMS Nodes!", "priority": 1,
    })
    assert sent["message"] == "SMS queued successfully"
    assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
        resp.headers)
    mid = sent["messageId"]
    assert sent["encoding"] == "GSM-7" and sent["segments"] == 2

    # Extensions: scheduled with an expiry, an idempotent replay, a reused key.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    once = {**basic(), "Idempotency-Key": "openapi-test-1"}
    scheduled = {"phoneNumbers": [NUMBER], "message": "later", "scheduledAt": later,
                 "ttl": 7200}
    first, _ = await live.call("POST", "/api/send-sms", 200, headers=once, json=scheduled)
    assert first["message"] == "SMS scheduled successfully"
    again, _ = await live.call("POST", "/api/send-sms", 200, headers=once, json=scheduled)
    assert again == first
    await live.call("POST", "/api/send-sms", 409, headers=once,
                    json={**scheduled, "message": "something else"})
    waiting, _ = await live.call("GET", "/api/messages/{id}", 200,
                                 path=f"/api/messages/{first['messageId']}", headers=basic())
    assert waiting["status"] == "scheduled" and waiting["expiresAt"] is not None

    # A phone takes it: one recipient delivered, one failed (a partial message with a full
    # timeline), and telemetry for GET /api/device.
    phone = await RawPhone.login(ws_url(hub), "shop-phone-1", PASSWORD)
    try:
        [frame] = await phone.recv_sms(1)
        await phone.ack(frame, ref="a")
        await phone.recv_type("ok")
        await phone.send({"type": "status", "ref": "d", "id": frame["id"], "to": NUMBER,
                          "status": "delivered"})
        await phone.recv_type("ok")
        await phone.send({"type": "status", "ref": "f", "id": frame["id"], "to": OTHER,
                          "status": "failed", "error": "RESULT_ERROR_NULL_PDU"})
        await phone.recv_type("ok")
        await phone.send({"type": "heartbeat", "battery": 87, "charging": True, "signal": 3})
        await phone.send({"type": "inbound", "ref": "in-1", "from": NUMBER,
                          "message": "Yes, see you at 9.", "receivedAt": "2026-11-21T10:31:02Z"})
        await phone.recv_type("ok")

        message, _ = await live.call("GET", "/api/messages/{id}", 200,
                                     path=f"/api/messages/{mid}", headers=basic())
        assert message["status"] == "partial"
        assert any(e.get("error") for e in message["events"])
        page, _ = await live.call("GET", "/api/messages", 200, headers=basic())
        assert {m["id"] for m in page["data"]} == {mid, first["messageId"]}
        await live.call("GET", "/api/messages", 200, path="/api/messages?status=partial&"
                        "per_page=5&since=2020-01-01T00:00:00Z&to=%2B1234567890",
                        headers=basic())

        device: Json = {}
        for _ in range(50):  # telemetry is written asynchronously
            device, _ = await live.call("GET", "/api/device", 200, headers=basic())
            if device["telemetryAt"] is not None:
                break
            await asyncio.sleep(0.05)
        assert device["online"] is True and device["battery"] == 87
        await live.call("PUT", "/api/device/pacing", 200, json={"perMinute": 20},
                        headers=basic())
        await live.call("PUT", "/api/device/pacing", 200, json={"perMinute": None},
                        headers=basic())

        # Cancel: once, then nothing is left to cancel.
        other, _ = await live.call("POST", "/api/send-sms", 200, headers=basic(),
                                   json={"phoneNumbers": [NUMBER], "message": "Ünïcode ✓"})
        cancel = f"/api/messages/{other['messageId']}"
        await live.call("DELETE", "/api/messages/{id}", 200, path=cancel, headers=basic())
        await live.call("DELETE", "/api/messages/{id}", 409, path=cancel, headers=basic())
    finally:
        await phone.close()

    # Tokens: create with the password, use, list, revoke.
    created, _ = await live.call("POST", "/api/tokens", 201, json={"name": "billing script"},
                                 headers=basic())
    bearer = {"Authorization": f"Bearer {created['token']}"}
    await live.call("POST", "/api/tokens", 201, headers=basic())  # no body at all
    await live.call("GET", "/api/tokens", 200, headers=bearer)
    await live.call("POST", "/api/tokens", 401, json={}, headers=bearer)
    await live.call("DELETE", "/api/tokens/{id}", 200, path=f"/api/tokens/{created['id']}",
                    headers=basic())
    await live.call("DELETE", "/api/tokens/{id}", 404, path=f"/api/tokens/{created['id']}",
                    headers=basic())

    # Errors: documented codes, and the seed's exact strings.
    send_op = doc["paths"]["/api/send-sms"]["post"]
    body, _ = await live.call("POST", "/api/send-sms", 400,
                              json={"phoneNumbers": [NUMBER], "message": "hi"})
    assert body["error"] in error_examples(send_op, "400")
    body, _ = await live.call("POST", "/api/send-sms", 401, json={
        "deviceUsername": "shop-phone-1", "password": "wrong password",
        "phoneNumbers": [NUMBER], "message": "hi"})
    assert body["error"] in error_examples(send_op, "401")
    body, _ = await live.call("POST", "/api/send-sms", 413, data=b" " * (65 * 1024),
                              headers={"Content-Type": "application/json"})
    assert body["error"] in error_examples(send_op, "413")
    await live.call("GET", "/api/messages/{id}", 404, path="/api/messages/999999",
                    headers=basic())
    body, _ = await live.call("GET", "/api/messages", 401)
    assert body["error"] in error_examples(doc["paths"]["/api/messages"]["get"], "401")
    await live.call("GET", "/api/messages", 400, path="/api/messages?page=0", headers=basic())
    await live.call("PUT", "/api/device/pacing", 400, json={}, headers=basic())

    # Received SMS.
    received, _ = await live.call("GET", "/api/inbound", 200, headers=basic(),
                                  path="/api/inbound?from=%2B1234567890&per_page=5")
    inbound_id = received["data"][0]["id"]
    await live.call("GET", "/api/inbound/{id}", 200, path=f"/api/inbound/{inbound_id}",
                    headers=basic())
    await live.call("GET", "/api/inbound/{id}", 404, path="/api/inbound/999999",
                    headers=basic())
    await live.call("GET", "/api/inbound", 400, path="/api/inbound?from=%20", headers=basic())

    # Webhooks: what the receiver got validates against the document's `webhooks`.
    events = await receiver.count("/live", 3)
    for event in events:
        at = pointer("webhooks", event["type"], "post", "requestBody", "content",
                     "application/json", "schema")
        assert live.schemas.errors(at, event) == [], event
    assert {e["type"] for e in events} == {"sms.received", "message.delivered",
                                           "message.failed"}
    hook_path = f"/api/webhooks/{hook['id']}"
    log: Json = {}
    for _ in range(100):  # each attempt is recorded just after the receiver answered
        log, _ = await live.call("GET", "/api/webhooks/{id}/deliveries", 200,
                                 path=f"{hook_path}/deliveries", headers=basic())
        if all(d["state"] == "delivered" for d in log["data"]) and log["total"] == 3:
            break
        await asyncio.sleep(0.05)
    assert log["total"] == 3 and all(d["attempts"] for d in log["data"])
    await live.call("GET", "/api/webhooks/{id}/deliveries", 400,
                    path=f"{hook_path}/deliveries?state=lost", headers=basic())
    await live.call("GET", "/api/webhooks", 200, headers=basic())
    await live.call("GET", "/api/webhooks/{id}", 200, path=hook_path, headers=basic())
    paused, _ = await live.call("PATCH", "/api/webhooks/{id}", 200, path=hook_path,
                                headers=basic(), json={"active": False})
    assert paused["disabledReason"] is not None
    await live.call("PATCH", "/api/webhooks/{id}", 400, path=hook_path, headers=basic(),
                    json={})
    await live.call("POST", "/api/webhooks", 400, headers=basic(),
                    json={"url": "ftp://example.com/", "events": ["sms.received"]})
    await live.call("DELETE", "/api/webhooks/{id}", 200, path=hook_path, headers=basic())
    await live.call("DELETE", "/api/webhooks/{id}", 404, path=hook_path, headers=basic())
    await live.call("GET", "/api/webhooks/{id}", 404, path=hook_path, headers=basic())

    # An account's phones (ACCOUNTS.md): the account adds, lists and removes them.
    await add_account(hub, "acme")
    added, _ = await live.call("POST", "/api/devices", 201, headers=basic("acme"),
                               json={"username": "acme-1", "password": PASSWORD})
    await live.call("POST", "/api/devices", 409, headers=basic("acme"),
                    json={"username": "acme-1", "password": PASSWORD})
    await live.call("POST", "/api/devices", 400, headers=basic("acme"), json={})
    await live.call("POST", "/api/devices", 403, headers=basic("acme-1"),
                    json={"username": "acme-2", "password": PASSWORD})
    await live.call("GET", "/api/devices", 200, headers=basic("acme"))
    await live.call("DELETE", "/api/devices/{id}", 403, path=f"/api/devices/{added['id']}",
                    headers=basic("acme-1"))
    await live.call("DELETE", "/api/devices/{id}", 200, path=f"/api/devices/{added['id']}",
                    headers=basic("acme"))
    await live.call("DELETE", "/api/devices/{id}", 404, path=f"/api/devices/{added['id']}",
                    headers=basic("acme"))
    await live.call("GET", "/api/quota", 200, headers=basic("acme"))

    covered = {(m.upper(), p) for p, m, _op in operations(doc)} - {
        (m, p) for m, p, _s in live.checked}
    assert covered == {("GET", "/api/openapi.json")}  # checked by its own test
