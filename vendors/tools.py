"""A vendor's operations as tools an agent calls (MCP), and the request each tool call becomes.

Why a second view of the catalogue: an agent that reaches a vendor through MCP names an operation
and hands JSON arguments; the governance pipeline reads HTTP requests. An adapter's ``tools()``
lists one ``Tool`` per catalogued operation (its name, the vendor's own description and a JSON
Schema of its parameters, all generated from the vendor's SDK or OpenAPI document, never written
by hand), and ``tool_request`` turns a call's arguments into exactly the request the vendor's SDK
would have sent through Tollgate, which then goes down the one request path (``parse_request`` and
everything after it): no rule is implemented twice.

This module is vendor-neutral: the dataclasses, the argument check, and the encoders several
vendors share (a flat or JSON body, the path filled in, an OpenAPI schema made self-contained).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from jsonschema import Draft202012Validator, ValidationError

from vendors.base import RequestRejected

# OpenAI's rule for function names, the strictest of the MCP clients'.
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_DESCRIPTION = 1000
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Arguments that fail the schema: the message names the first few, enough for a model to fix its call.
_MAX_ERRORS = 3


@dataclass(frozen=True, eq=False)
class Tool:
    """One catalogued operation as a tool. ``path`` is the operation exactly as ``Operation.path`` and
    policies name it (another host's with its route prefix), so a policy's allow list filters tools."""

    name: str  # unique within the vendor, matches TOOL_NAME
    method: str
    path: str
    kind: str  # the Operation's kind
    priced: str  # the Operation's priced
    title: str  # short, for people
    description: str  # the vendor's own words, at most MAX_DESCRIPTION characters
    input_schema: Mapping[str, Any]  # JSON Schema 2020-12, self-contained


@dataclass(frozen=True)
class ToolRequest:
    """The request a tool call becomes, as it would arrive at /<vendor> from the vendor's SDK."""

    method: str
    path: str  # under /<vendor>, route prefix included, path parameters filled in and percent-encoded
    query: bytes
    headers: dict[str, str]  # lower-case names
    body: bytes


# A tool call's arguments are a request that cannot be read as the tool says: the same refusal, and
# the same place in the error tree (proxy/errors.py), as a malformed HTTP request; its own reason code.
ToolArgumentsInvalid = RequestRejected
INVALID = "invalid_tool_arguments"


def invalid(tool: Tool, message: str, param: str | None = None) -> RequestRejected:
    return ToolArgumentsInvalid(INVALID, f"Tool {tool.name}: {message}", param=param, endpoint=f"{tool.method} "
                                f"{tool.path}")


def check_arguments(tool: Tool, arguments: Mapping[str, Any]) -> None:
    """Refuse arguments the tool's schema does not take, naming what is wrong (``invalid_tool_arguments``)."""
    if not isinstance(arguments, Mapping):
        raise invalid(tool, "the arguments must be a JSON object.")
    errors = sorted(_validator(tool).iter_errors(dict(arguments)), key=lambda e: [str(p) for p in e.path])
    if errors:
        said = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or 'arguments'}: {_said(e)}"
                         for e in errors[:_MAX_ERRORS])
        first = errors[0].absolute_path
        raise invalid(tool, said, param=str(first[0]) if first else None)


def _said(error: ValidationError) -> str:
    """What is wrong, in the schema's terms, never quoting the value given: an argument may hold
    anything (a card number, a message's text), and this message goes to the audit row."""
    if error.validator in ("required", "additionalProperties", "dependentRequired"):
        return error.message[:200]  # names of arguments only
    return f"must satisfy {error.validator}: {json.dumps(error.validator_value, default=str)[:160]}"


@lru_cache(maxsize=1024)
def _validator(tool: Tool) -> Draft202012Validator:
    """One per tool (a Tool hashes by identity): the largest Stripe schemas are 100 kB to compile."""
    return Draft202012Validator(tool.input_schema)


def path_names(template: str) -> list[str]:
    """The placeholders of a path template, in order: ``/v1/charges/{charge}`` -> ["charge"]."""
    return _PLACEHOLDER.findall(template)


def fill_path(template: str, values: Mapping[str, str]) -> str:
    """The template with each placeholder's value percent-encoded as one path segment."""
    return _PLACEHOLDER.sub(lambda m: quote(str(values[m.group(1)]), safe=""), template)


# A path argument is one segment, an id or a number: nothing that could make the path name another
# operation once decoded (``ch_1/../../v1/payouts``), or read two ways.
_SEGMENT = re.compile(r"[^/\\?#%\x00-\x20\x7f]{1,256}")


def split_arguments(tool: Tool, template: str, arguments: Mapping[str, Any],
                    fixed: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """(the filled path, the arguments that are not path parameters); ``fixed`` fills placeholders the
    tool does not expose (Twilio's AccountSid). A path argument that is no single segment is refused."""
    names = path_names(template)
    given = dict(fixed or {})
    given.update({name: arguments[name] for name in names if name in arguments and name not in given})
    for name, value in given.items():
        if not (isinstance(value, str) and _SEGMENT.fullmatch(value) and value not in (".", "..")):
            raise invalid(tool, f"{name} must be one path segment: an id, without '/', '?', '#', '%', spaces "
                          "or control characters.", param=name)
    rest = {k: v for k, v in arguments.items() if k not in names}  # the schema refuses any fixed one given
    return fill_path(template, given), rest


def form_value(value: Any) -> str:
    """A scalar as the SDKs write it in a form: booleans ``true``/``false``, the rest as Python's ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flat_form(params: Mapping[str, Any]) -> bytes:
    """A flat form (``To=...&MediaUrl=a&MediaUrl=b``): a list is its key repeated, in order; None is left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, form_value(v)) for v in values)
    return urlencode(pairs).encode("ascii")


def json_body(params: Mapping[str, Any]) -> bytes:
    return json.dumps(params, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def trimmed(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Whitespace runs folded; cut at a word boundary with an ellipsis when longer than ``limit``."""
    text = re.sub(r"[ \t]+", " ", re.sub(r"\n{3,}", "\n\n", text.strip()))
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def snake(name: str) -> str:
    """``CreateVerification`` -> ``create_verification``; ``emails/send`` -> ``emails_send``."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", name)
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return name.strip("_").lower()


def unique_names(tools: Sequence[Tool]) -> None:
    """Raise ValueError unless every name is valid and used once (the generators call it)."""
    seen: set[str] = set()
    for tool in tools:
        if not TOOL_NAME.match(tool.name) or tool.name in seen:
            raise ValueError(f"tool name {tool.name!r} is invalid or used twice")
        seen.add(tool.name)


# OpenAPI keywords that are no JSON Schema 2020-12 (or only noise to a model): dropped when inlining.
_OPENAPI_ONLY = frozenset({"nullable", "example", "discriminator", "xml", "externalDocs", "readOnly", "writeOnly",
                           "deprecated", "title"})


def inline_schema(document: Mapping[str, Any], node: Any, seen: tuple[str, ...] = ()) -> Any:
    """An OpenAPI schema with every ``$ref`` resolved in place (a self-contained JSON Schema), OpenAPI
    3.0's ``nullable`` as a ``null`` type, ``x-`` extensions and examples dropped. A reference that
    refers back to itself is cut to ``{}`` (any value): no tool argument can be infinite."""
    if isinstance(node, list):
        return [inline_schema(document, item, seen) for item in node]
    if not isinstance(node, Mapping):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return {}
        return inline_schema(document, _resolve(document, ref), (*seen, ref))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-") or key in _OPENAPI_ONLY:
            continue
        out[key] = (value if key in ("enum", "const", "required", "default", "pattern", "format", "description")
                    else inline_schema(document, value, seen))
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _resolve(document: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"external reference {ref!r}: the tool schema must be self-contained")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def object_schema(properties: Mapping[str, Any], required: Sequence[str]) -> dict[str, Any]:
    """A tool's arguments: only those named (a model learns the names from the refusal, and nothing it
    invents, such as Twilio's AccountSid, reaches the request), the required ones required."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    if required:
        schema["required"] = sorted(set(required))
    return schema



@dataclass(frozen=True)
class SpecOperation:
    """How a tool read from an OpenAPI document is sent: its path on the host as the spec spells it,
    the route prefix that reaches the host, the arguments that go in the query, and its body's encoding."""

    template: str
    prefix: str  # "" for the vendor's main host, "/verify" for another's
    query: frozenset[str]
    body: str | None  # "form", "json", "multipart"; None: no body


METHODS = ("get", "post", "put", "patch", "delete")
_BODIES = {"application/x-www-form-urlencoded": "form", "application/json": "json", "multipart/form-data": "multipart"}


def openapi_tools(document: Mapping[str, Any], operations: Mapping[str, Any], *, prefix: str = "",
                  name_prefix: str = "", hidden: frozenset[str] = frozenset()) -> list[tuple[Tool, SpecOperation]]:
    """One tool per operation of an OpenAPI document: its ``operationId`` snake-cased (after
    ``name_prefix``), summary and description, and a schema of its path and query parameters (less
    ``hidden``, which the caller fills in) and its request body's properties. ``operations`` holds
    the catalogue's ``Operation`` of each, keyed ``"METHOD /template"`` as the spec spells it."""
    found: list[tuple[Tool, SpecOperation]] = []
    for template, item in document["paths"].items():
        for method in (m for m in METHODS if m in item):
            spec = item[method]
            operation = operations[f"{method.upper()} {template}"]
            properties, required, query = _parameters(document, spec, hidden)
            body = _body(document, spec, properties, required)
            summary, description = _described(spec, item)
            if body == "multipart":
                description = upload_described(description)
            tool = Tool(short_name(name_prefix + snake(spec["operationId"])), method.upper(), operation.path,
                        operation.kind, operation.priced, trimmed(summary, 120), trimmed(description),
                        object_schema(properties, required))
            found.append((tool, SpecOperation(template, prefix, frozenset(query), body)))
    return found


def _described(spec: Mapping[str, Any], item: Mapping[str, Any]) -> tuple[str, str]:
    """(title, description): the operation's summary, then its description or, where the spec has
    none (most of Twilio's), that of the resource it acts on; a title from the operationId at worst."""
    summary = str(spec.get("summary") or "").strip()
    text = str(spec.get("description") or "").strip()
    if not text or text == summary:
        text = str(item.get("description") or "").strip()
    title = summary or snake(spec["operationId"]).replace("_", " ").capitalize()
    parts = [part for part in dict.fromkeys((summary, text)) if part]
    return title, "\n\n".join(parts) or title


def short_name(name: str) -> str:
    """A name longer than 64 characters: its first 55 and a hash of the whole (deterministic, unique)."""
    if len(name) <= 64:
        return name
    return f"{name[:55]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _parameters(document: Mapping[str, Any], spec: Mapping[str, Any], hidden: frozenset[str]
                ) -> tuple[dict[str, Any], list[str], list[str]]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    query: list[str] = []
    for raw in spec.get("parameters", []):
        parameter = inline_schema(document, raw)
        name, where = parameter["name"], parameter["in"]
        if where not in ("path", "query") or name in hidden:
            continue  # headers are the SDK's business, not a tool argument
        schema = dict(parameter.get("schema") or {"type": "string"})
        if parameter.get("description"):
            schema["description"] = trimmed(str(parameter["description"]), 500)
        properties[name] = schema
        if where == "path" or parameter.get("required"):
            required.append(name)
        if where == "query":
            query.append(name)
    return properties, required, query


def _body(document: Mapping[str, Any], spec: Mapping[str, Any], properties: dict[str, Any], required: list[str]
          ) -> str | None:
    content = spec.get("requestBody", {}).get("content", {})
    for media, encoding in _BODIES.items():
        if media in content:
            schema = inline_schema(document, content[media].get("schema", {}))
            for name, prop in (schema.get("properties") or {}).items():
                properties[name] = {**prop, "description": trimmed(str(prop["description"]), 500)} \
                    if "description" in prop else prop
            required.extend(schema.get("required", []))
            return encoding
    return None


def openapi_request(tool: Tool, operation: SpecOperation, arguments: Mapping[str, Any], headers: dict[str, str],
                    *, fixed: Mapping[str, str] | None = None, form: Callable[[Mapping[str, Any]], bytes] = flat_form
                    ) -> ToolRequest:
    """The request of a tool read by ``openapi_tools``: path parameters in the path, query parameters (all
    of a GET's or DELETE's) in the query, the rest in the body in the spec's encoding."""
    check_arguments(tool, arguments)
    path, rest = split_arguments(tool, operation.template, arguments, fixed)
    in_query = tool.method in ("GET", "DELETE")
    query = {k: v for k, v in rest.items() if in_query or k in operation.query}
    body_params = {k: v for k, v in rest.items() if k not in query}
    path = operation.prefix + path
    if operation.body is None or (not body_params and operation.body != "json"):
        if body_params:
            raise invalid(tool, f"takes no body, but was given {sorted(body_params)}.")
        return ToolRequest(tool.method, path, flat_form(query), headers, b"")
    if operation.body == "multipart":
        fields = [(k, form_value(v)) for k, v in body_params.items() if k not in FILE_ARGUMENTS]
        content_type, body = multipart(tool, fields, {k: v for k, v in body_params.items() if k in FILE_ARGUMENTS})
        return ToolRequest(tool.method, path, flat_form(query), {**headers, "content-type": content_type}, body)
    if operation.body == "json":
        body = json.dumps(body_params).encode("utf-8")
        return ToolRequest(tool.method, path, flat_form(query), {**headers, "content-type": "application/json"}, body)
    return ToolRequest(tool.method, path, flat_form(query),
                       {**headers, "content-type": "application/x-www-form-urlencoded"}, form(body_params))


# The argument that is a file where an operation uploads one: Stripe's FileCreateParams and
# Resend's contact import both call it ``file``.
FILE_ARGUMENTS = frozenset({"file"})
# Tollgate's words, not the vendor's, before an upload's description: the vendor's speak of a file.
UPLOAD_NOTE = "As a tool, `file` is the file's content as text (a CSV, a text document); binary files go over HTTP."


def upload_described(description: str) -> str:
    return trimmed(f"{UPLOAD_NOTE}\n\n{description}")


def multipart(tool: Tool, fields: Sequence[tuple[str, str]], files: Mapping[str, Any]) -> tuple[str, bytes]:
    """(content type, body) of a multipart/form-data upload in the canonical shape stripe-python's
    ``MultipartDataGenerator`` writes: each part ``--boundary``, its headers, a blank line, its content;
    a file named ``blob`` (its name when it has none), ``application/octet-stream``. A tool call is
    JSON, so a file is its content as text (a CSV, a text document): a binary file goes over HTTP."""
    boundary = secrets.token_hex(30)  # unguessable, as the SDK's: content holding it would split the part
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'.encode()
    for name, content in files.items():
        if not isinstance(content, str):
            raise invalid(tool, f"{name} must be the file's content as text.", param=name)
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"; filename="blob"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        out += content.encode("utf-8") + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def _quoted(name: str) -> str:
    return name.replace('"', "%22").replace("\r", " ").replace("\n", " ")  # as the SDK escapes a header value

