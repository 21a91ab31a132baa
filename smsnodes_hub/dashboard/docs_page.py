"""GET /docs: the HTTP API for people, generated from the OpenAPI document so it cannot drift.

Every operation of `openapi.document()` is rendered with its parameters, request fields,
examples and answers. The curl sample of each operation is the source of its Python and
JavaScript examples: it is parsed (strictly: an option this parser does not know is an
error, caught by the tests) and written out again for `requests` and `fetch`."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from markdown_it import MarkdownIt
from markupsafe import Markup

from smsnodes_hub.api.openapi import document
from smsnodes_hub.appkeys import SETTINGS
from smsnodes_hub.dashboard.auth import harden
from smsnodes_hub.dashboard.keys import DASHBOARD, JINJA

Json = dict[str, Any]
METHODS = ("get", "post", "put", "patch", "delete")


# -- curl samples, parsed ---------------------------------------------------------------------


@dataclass(slots=True)
class CurlCall:
    url: str = ""
    method: str = ""
    user: tuple[str, str] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    data: str | None = None
    show_headers: bool = False
    comments: list[str] = field(default_factory=list)


_QUIET_FLAGS = {"-s", "-S", "-sS", "-Ss", "--silent", "--show-error"}


def parse_curl(source: str) -> list[CurlCall]:
    """The curl commands of a sample: blank lines separate commands, `#` lines before a
    command are its comment, a trailing backslash continues a line."""
    calls = []
    for chunk in re.split(r"\n\s*\n", source.strip()):
        lines = chunk.splitlines()
        comments = []
        while lines and lines[0].lstrip().startswith("#"):
            comments.append(lines.pop(0).lstrip().lstrip("#").strip())
        argv = shlex.split("\n".join(lines).replace("\\\n", " "))
        if not argv or argv[0] != "curl":
            raise ValueError(f"not a curl command: {chunk[:40]!r}")
        call = CurlCall(comments=comments)
        args = iter(argv[1:])
        for arg in args:
            if arg in _QUIET_FLAGS:
                continue
            if arg in ("-i", "--include"):
                call.show_headers = True
            elif arg in ("-X", "--request"):
                call.method = next(args).upper()
            elif arg in ("-u", "--user"):
                name, _, password = next(args).partition(":")
                call.user = (name, password)
            elif arg in ("-H", "--header"):
                name, _, value = next(args).partition(":")
                call.headers.append((name.strip(), value.strip()))
            elif arg in ("-d", "--data", "--data-raw"):
                call.data = next(args)
            elif arg.startswith("-"):
                raise ValueError(f"curl option not understood by the docs generator: {arg}")
            elif call.url:
                raise ValueError(f"two URLs in one curl command: {arg}")
            else:
                call.url = arg
        if not call.url:
            raise ValueError("a curl command without a URL")
        call.method = call.method or ("POST" if call.data is not None else "GET")
        calls.append(call)
    return calls


def _json_body(call: CurlCall) -> Any:
    return None if call.data is None else json.loads(call.data)


def _auth_header(call: CurlCall) -> str | None:
    for name, value in call.headers:
        if name.lower() == "authorization":
            return value
    return None


# -- Python (requests) ------------------------------------------------------------------------


def _py(value: Any, level: int) -> str:
    pad = "    " * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "\n".join(f"{pad}    {k!r}: {_py(v, level + 1)}," for k, v in value.items())
        return "{\n" + items + f"\n{pad}}}"
    if isinstance(value, list):
        inline = "[" + ", ".join(_py(v, level + 1) for v in value) + "]"
        if len(inline) <= 60 and not any(isinstance(v, dict | list) for v in value):
            return inline
        items = "\n".join(f"{pad}    {_py(v, level + 1)}," for v in value)
        return "[\n" + items + f"\n{pad}]"
    return repr(value)  # str, int, float, bool and None are Python literals as they are


def python_example(calls: list[CurlCall]) -> str:
    out = ["import requests"]
    for call in calls:
        body = _json_body(call)
        out.append("")
        out.extend(f"# {c}" for c in call.comments)
        args = [repr(call.url)]
        if call.user is not None:
            args.append(f"auth=({call.user[0]!r}, {call.user[1]!r})")
        headers = {k: v for k, v in call.headers
                   if not (body is not None and k.lower() == "content-type")}
        if headers:
            args.append(f"headers={_py(headers, 1)}")
        if body is not None:
            args.append(f"json={_py(body, 1)}")
        args.append("timeout=30")
        out.append(f"response = requests.{call.method.lower()}(")
        out.extend(f"    {arg}," for arg in args)
        out.append(")")
        if call.show_headers:
            out.append("print(dict(response.headers))")
        out.append("print(response.status_code, response.json())")
    return "\n".join(out)


# -- JavaScript (fetch) -----------------------------------------------------------------------


_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


def _js(value: Any, level: int) -> str:
    pad = "  " * level
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "\n".join(
            f"{pad}  {k if _IDENTIFIER.match(k) else json.dumps(k)}: {_js(v, level + 1)},"
            for k, v in value.items()
        )
        return "{\n" + items + f"\n{pad}}}"
    if isinstance(value, list):
        inline = "[" + ", ".join(_js(v, level + 1) for v in value) + "]"
        if len(inline) <= 60 and not any(isinstance(v, dict | list) for v in value):
            return inline
        items = "\n".join(f"{pad}  {_js(v, level + 1)}," for v in value)
        return "[\n" + items + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False)


def javascript_example(calls: list[CurlCall]) -> str:
    out = ["// Node.js 18+ (save as example.mjs) or a browser console: fetch is built in."]
    for n, call in enumerate(calls):
        body = _json_body(call)
        out.append("")
        out.extend(f"// {c}" for c in call.comments)
        headers: list[str] = []
        if call.user is not None:
            credentials = json.dumps(":".join(call.user))
            headers.append(f'    Authorization: "Basic " + btoa({credentials}),')
        headers.extend(
            f"    {name if _IDENTIFIER.match(name) else json.dumps(name)}: {json.dumps(value)},"
            for name, value in call.headers
        )
        options = [f'  method: "{call.method}",']
        if headers:
            options.append("  headers: {")
            options.extend(headers)
            options.append("  },")
        if body is not None:
            options.append(f"  body: JSON.stringify({_js(body, 1)}),")
        keyword = "let response =" if n == 0 else "response ="
        out.append(f"{keyword} await fetch({json.dumps(call.url)}, {{")
        out.extend(options)
        out.append("});")
        if call.show_headers:
            out.append("console.log(Object.fromEntries(response.headers));")
        out.append("console.log(response.status, await response.json());")
    return "\n".join(out)


# -- The document, shaped for the template ----------------------------------------------------


def _markdown() -> MarkdownIt:
    # Raw HTML off: the text is ours, but nothing in it should become markup by accident.
    return MarkdownIt("commonmark", {"html": False})


def _html(md: MarkdownIt, text: str, *, inline: bool = True) -> Markup:
    # markdown-it escapes the text, and raw HTML is off: what it returns is safe markup.
    return Markup(md.renderInline(text) if inline else md.render(text))  # noqa: S704


def _resolve(doc: Json, item: Any) -> Any:
    while isinstance(item, dict) and "$ref" in item:
        node: Any = doc
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def _type(doc: Json, schema: Json) -> str:
    schema = _resolve(doc, schema)
    kind = schema.get("type", "object" if "properties" in schema else "")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" or (isinstance(kind, list) and "array" in kind):
        items = _type(doc, schema.get("items", {}))
        text = text.replace("array", f"array of {items}")
    if "enum" in schema:
        text += ": " + ", ".join(str(v) for v in schema["enum"])
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength",
                                             "maxItems") if k in schema]
    if bounds:
        text += f" ({', '.join(bounds)})"
    return text


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _fields(doc: Json, schema: Json, md: MarkdownIt) -> list[Json]:
    schema = _resolve(doc, schema)
    required = set(schema.get("required", []))
    return [
        {"name": name, "type": _type(doc, prop), "required": name in required,
         "description": _html(md, _resolve(doc, prop).get("description", ""))}
        for name, prop in schema.get("properties", {}).items()
    ]


def _examples(doc: Json, content: Json) -> list[Json]:
    media = content.get("application/json", {})
    return [{"summary": ex.get("summary", name), "json": _pretty(ex["value"])}
            for name, ex in media.get("examples", {}).items()]


def _operation(doc: Json, path: str, method: str, op: Json, md: MarkdownIt) -> Json:
    params = []
    for raw in op.get("parameters", []):
        p = _resolve(doc, raw)
        params.append({"name": p["name"], "in": p["in"], "required": p.get("required", False),
                       "type": _type(doc, p.get("schema", {})),
                       "description": _html(md, p.get("description", ""))})
    body = op.get("requestBody")
    request = None
    if body is not None:
        content = body.get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        request = {"description": _html(md, body.get("description", "")),
                   "required": body.get("required", False),
                   "fields": _fields(doc, schema, md), "examples": _examples(doc, content)}
    responses = [
        {"code": code, "description": _html(md, r.get("description", "")),
         "headers": sorted(r.get("headers", {})),
         "examples": _examples(doc, r.get("content", {}))}
        for code, r in ((c, _resolve(doc, r)) for c, r in op.get("responses", {}).items())
    ]
    schemes = sorted({name for requirement in op.get("security", []) for name in requirement})
    curl = "\n\n".join(s["source"] for s in op.get("x-codeSamples", []) if s["label"] == "curl")
    try:
        calls = parse_curl(curl)
        python, javascript = python_example(calls), javascript_example(calls)
    except (ValueError, StopIteration) as exc:
        # The page still shows the curl sample; tests/dashboard/test_docs_page.py fails on
        # this case.
        python = javascript = f"(not generated: {exc})"
    return {
        "id": op["operationId"], "method": method.upper(), "path": path,
        "summary": op.get("summary", ""), "tags": op.get("tags", []),
        "description": _html(md, op.get("description", ""), inline=False),
        "auth": schemes, "parameters": params, "request": request, "responses": responses,
        "curl": curl, "python": python, "javascript": javascript,
    }


def docs_context(base_url: str) -> Json:
    doc = document(base_url)
    md = _markdown()
    operations = [
        _operation(doc, path, method, op, md)
        for path, item in doc["paths"].items()
        for method, op in item.items() if method in METHODS
    ]
    groups = [
        {"name": tag["name"], "description": tag.get("description", ""),
         "operations": [o for o in operations if tag["name"] in o["tags"]]}
        for tag in doc.get("tags", [])
    ]
    grouped = {o["id"] for g in groups for o in g["operations"]}
    others = [o for o in operations if o["id"] not in grouped]
    if others:
        groups.append({"name": "Other", "description": "", "operations": others})
    send = next(o for o in operations if o["id"] == "sendSms")
    return {
        "info": doc["info"],
        "intro": _html(md, doc["info"].get("description", ""), inline=False),
        "groups": [g for g in groups if g["operations"]],
        "operations": operations,
        "base": base_url,
        "ws_url": re.sub(r"^http", "ws", base_url) + "/ws/device",
        "first_send": send["curl"].split("\n\n")[0],
        "schemes": doc["components"].get("securitySchemes", {}),
    }


DOCS_CACHE_SIZE = 16  # pages kept per application, one per host name readers use


async def docs(request: web.Request) -> web.Response:
    # The examples name the host the reader used to reach this page, or the configured
    # public address (behind a reverse proxy, Host may name the upstream).
    state = request.app[DASHBOARD]
    scheme = "https" if request.app[SETTINGS].tls else request.scheme
    base = state.origin or f"{scheme}://{request.host}"
    # Rendering takes tens of milliseconds on the event loop and the document only changes
    # with the code: each host's page is rendered once (bounded, so odd Host headers cannot
    # grow it).
    cache = state.docs_pages
    text = cache.get(base)
    if text is None:
        page = {**docs_context(base), "operator": None, "csrf": "", "path": request.path,
                "notice": None, "notice_is_error": False, "refresh": 0}
        text = aiohttp_jinja2.render_string("docs.html", request, page, app_key=JINJA)
        if len(cache) >= DOCS_CACHE_SIZE:
            cache.pop(next(iter(cache)))
        cache[base] = text
    response = web.Response(text=text, content_type="text/html")
    harden(response)
    # The examples carry the Host header the reader sent: never cached for anyone else.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Host"
    return response
