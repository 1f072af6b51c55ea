"""The catalogues of the vendors' operations against the vendors' own OpenAPI documents.

DESIGN.md guarantee 8: every operation the vendor's published description has is classified,
and an operation the catalogue does not know is refused. These tests read the specs in
emulators/fixtures/ and fail on any operation the catalogue does not match (added, removed or
renamed by the vendor), on repeated parameters or body types that drifted, on entries that
are not well formed, and on any operation the adapter would not name by its own template.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vendors.base import RequestRejected
from vendors.catalogue import KINDS, Catalogue
from vendors.resend import ResendAdapter
from vendors.resend.adapter import OPERATIONS as RESEND_OPERATIONS
from vendors.twilio import routes
from vendors.twilio.adapter import TwilioAdapter

FIXTURES = Path(__file__).resolve().parents[1] / "emulators" / "fixtures"
METHODS = ("get", "post", "put", "patch", "delete")
TWILIO = TwilioAdapter()
RESEND = ResendAdapter()
ACCOUNT = "AC" + "a1" * 16
# (spec, catalogue file, route prefix, the host the spec names, price rules the adapter knows)
TWILIO_RULES = {"free", "unknown", "sms", "voice", "voice_update", "lookup", "number", "verify"}
CATALOGUES = [
    ("twilio_api_v2010.json", routes.OPERATIONS_DIR / "api.json", None, TWILIO.default_upstream, TWILIO_RULES),
    ("twilio_lookups_v2.json", routes.OPERATIONS_DIR / "lookups.json", "lookups", routes.HOSTS["lookups"],
     TWILIO_RULES),
    ("twilio_verify_v2.json", routes.OPERATIONS_DIR / "verify.json", "verify", routes.HOSTS["verify"], TWILIO_RULES),
    ("twilio_messaging_v1.json", routes.OPERATIONS_DIR / "messaging.json", "messaging", routes.HOSTS["messaging"],
     TWILIO_RULES),
    ("twilio_pricing_v1.json", routes.OPERATIONS_DIR / "pricing.json", "pricing", routes.HOSTS["pricing"],
     TWILIO_RULES),
    ("twilio_pricing_v2.json", routes.OPERATIONS_DIR / "pricing_v2.json", "pricing", routes.HOSTS["pricing"],
     TWILIO_RULES),
    ("resend-openapi.json", RESEND_OPERATIONS, None, RESEND.default_upstream,
     {"free", "unknown", "email", "broadcast"}),
]
IDS = [spec for spec, *_ in CATALOGUES]
PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")
UUID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
# What an operation refuses when called with nothing: a send without its recipient, a batch without emails.
REFUSED_EMPTY = {"invalid_recipient", "invalid_sender", "invalid_parameter", "invalid_batch"}
BODIES = {"application/json": "json", "multipart/form-data": "multipart"}  # a body other than the vendor's usual


def spec(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def spec_operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": item[method]
            for path, item in document["paths"].items() for method in METHODS if method in item}


def entries(catalogue: Path) -> dict[str, dict[str, Any]]:
    operations: dict[str, dict[str, Any]] = json.loads(catalogue.read_text(encoding="utf-8"))["operations"]
    return operations


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref``s (``#/components/schemas/...``, ``#/components/parameters/...``)."""
    while "$ref" in node:
        _, section, name = node["$ref"].rsplit("/", 2)
        node = document["components"][section][name]
    return node


def spec_facts(document: dict[str, Any], operation: dict[str, Any]) -> tuple[list[str], set[str], set[str]]:
    """(body content types, parameters that are arrays, every parameter name) of one operation."""
    content = operation.get("requestBody", {}).get("content", {})
    arrays: set[str] = set()
    names: set[str] = set()
    for body in content.values():
        for name, prop in _resolve(document, body.get("schema", {})).get("properties", {}).items():
            names.add(name)
            if _resolve(document, prop).get("type") == "array":
                arrays.add(name)
    for parameter in (_resolve(document, p) for p in operation.get("parameters", ())):
        names.add(parameter["name"])
        if parameter.get("in") == "query" and _resolve(document, parameter.get("schema", {})).get("type") == "array":
            arrays.add(parameter["name"])
    return list(content), arrays, names


@pytest.mark.parametrize(("spec_file", "catalogue", "prefix", "host", "rules"), CATALOGUES, ids=IDS)
def test_the_catalogue_holds_exactly_the_specs_operations(spec_file, catalogue, prefix, host, rules) -> None:
    wanted, held = set(spec_operations(spec(spec_file))), set(entries(catalogue))
    assert not wanted - held, f"in {spec_file}, not classified in {catalogue.name}: {sorted(wanted - held)}"
    assert not held - wanted, f"in {catalogue.name}, no longer in {spec_file}: {sorted(held - wanted)}"


@pytest.mark.parametrize(("spec_file", "catalogue", "prefix", "host", "rules"), CATALOGUES, ids=IDS)
def test_lists_bodies_and_named_parameters_follow_the_spec(spec_file, catalogue, prefix, host, rules) -> None:
    document = spec(spec_file)
    operations = spec_operations(document)
    for key, entry in entries(catalogue).items():
        content, arrays, names = spec_facts(document, operations[key])
        assert set(entry.get("lists", ())) == arrays, f"{key}: repeated parameters drifted"
        default = "application/json" if spec_file.startswith("resend") else "application/x-www-form-urlencoded"
        expected_body = None if content in ([], [default]) else BODIES[content[0]]
        assert entry.get("body") == expected_body, f"{key}: body type drifted ({content})"
        for field in ("to", "sender"):
            name = entry.get(field)
            if name is not None:
                known = (name in key) if name.startswith("{") else (name in names)
                assert known, f"{key}: {field} {name!r} is not one of its parameters"


@pytest.mark.parametrize(("spec_file", "catalogue", "prefix", "host", "rules"), CATALOGUES, ids=IDS)
def test_every_entry_is_classified_and_priced_by_a_known_rule(spec_file, catalogue, prefix, host, rules) -> None:
    assert spec(spec_file)["servers"][0]["url"] == host  # the host the adapter forwards these operations to
    for key, entry in entries(catalogue).items():
        assert entry["kind"] in KINDS and entry["price"] in rules, key
        assert entry["note"].strip(), key
        if entry["kind"] in ("sends", "buys"):
            # What reaches a person or buys is priced from the request or refused: never recorded at $0.
            assert entry["price"] != "free", f"{key} {entry['kind']} but is priced at 0"
        if entry["price"] == "unknown":
            assert "unknown" in entry["note"], f"{key}: the note should say its cost is unknown, and why"
        assert entry.get("priced") in (None, "free", "request", "lookup", "after", "set"), key


def concrete(template: str, other: str = "x1") -> str:
    """A path for a template: each placeholder a value of its kind (an Account SID, a phone number...)."""
    segments = template.strip("/").split("/")
    out = []
    for index, segment in enumerate(segments):
        if not segment.startswith("{"):
            out.append(segment)
            continue
        name, _, suffix = segment[1:].partition("}")
        before = segments[index - 1] if index else ""
        if name == "AccountSid" or (name == "Sid" and before == "Accounts"):
            value = ACCOUNT
        elif name.endswith("Sid"):
            value = {"Messages": "SM", "Calls": "CA"}.get(before, "ZZ") + "0f" * 16
        elif name in ("PhoneNumber",):
            value = "+14155550100"
        elif name in ("Country", "CountryCode", "IsoCountry"):
            value = "US"
        else:
            value = other
        out.append(value + suffix)
    return "/" + "/".join(out)


@pytest.mark.parametrize(("spec_file", "catalogue", "prefix", "host", "rules"), CATALOGUES, ids=IDS)
def test_the_adapter_names_every_operation_by_its_template(spec_file, catalogue, prefix, host, rules) -> None:
    """No operation is shadowed by another, and none is refused as unknown."""
    route = f"/{prefix}" if prefix else ""
    adapter = RESEND if spec_file.startswith("resend") else TWILIO
    for key in entries(catalogue):
        method, template = key.split(" ", 1)
        # Twilio's templates as its spec spells them; Resend's with every placeholder {id} (GET /emails/{id}).
        expected = f"{method} {route}{template if adapter is TWILIO else PLACEHOLDER.sub('{id}', template)}"
        try:
            parsed = adapter.parse_request(method, route + concrete(template, UUID if adapter is RESEND else "x1"),
                                           b"", {}, b"")
        except RequestRejected as exc:  # a send without its recipient, say: refused, naming the operation
            assert exc.reason in REFUSED_EMPTY and exc.endpoint == expected, (key, exc)
            continue
        assert parsed.endpoint == expected and parsed.host == prefix
        assert "+1415" not in parsed.endpoint and ACCOUNT not in parsed.endpoint and UUID not in parsed.endpoint


@pytest.mark.parametrize("path", ["/2010-04-01/Accounts/{a}/Faxes.json", "/lookups/v1/PhoneNumbers/+14155550100",
                                  "/verify/v2/Services/VA{h}/Verifications/VE{h}/Retry", "/pricing/v1/Messaging",
                                  "/messaging/v1/Services/MG{h}/Nothing"])
def test_an_operation_no_catalogue_holds_is_refused_naming_no_value(path: str) -> None:
    concrete_path = path.format(a=ACCOUNT, h="0f" * 16)
    with pytest.raises(RequestRejected) as refused:
        TWILIO.parse_request("POST", concrete_path, b"", {}, b"")
    assert (refused.value.reason, refused.value.status) == ("unknown_operation", 404)
    assert refused.value.endpoint is not None and refused.value.endpoint.startswith("POST /")
    assert "+1415" not in refused.value.endpoint and "0f0f" not in refused.value.endpoint


def test_catalogues_load_as_the_adapter_reads_them() -> None:
    for _, catalogue, *_ in CATALOGUES:
        assert Catalogue.load(catalogue).operations


def test_policy_review_warns_of_credentials_and_unpriced_operations_from_the_catalogues() -> None:
    from proxy.policy import warnings

    twilio = warnings.review({"endpoints": {"allow": [
        "POST /2010-04-01/Accounts/*/Keys.json",
        "POST /2010-04-01/Accounts/*/IncomingPhoneNumbers/*/AssignedAddOns.json",
        "GET /lookups/v2/PhoneNumbers/*", "POST /verify/v2/Services/*/Verifications"]}}, TWILIO.operations())
    assert twilio.matches["GET /lookups/v2/PhoneNumbers/*"] == ["GET /lookups/v2/PhoneNumbers/{PhoneNumber}"]
    assert any("Keys.json, which issues credentials" in w for w in twilio.warnings)
    assert any("AssignedAddOns.json, which buys but cannot be priced" in w for w in twilio.warnings)
    assert any("Verifications, which reaches people and is priced at the prices the operator sets" in w
               for w in twilio.warnings)
    resend = warnings.review({"endpoints": {"allow": ["POST /api-keys", "GET /emails/*"]}}, RESEND.operations())
    assert resend.matches["GET /emails/*"] == ["GET /emails/{id}"]  # not /emails/receiving, not /emails/metrics
    assert any("POST /api-keys, which issues credentials" in w for w in resend.warnings)


def _answer_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema of an operation's success answer."""
    status = next(s for s in operation["responses"] if s.startswith("2"))
    return _resolve(document, operation["responses"][status]["content"]["application/json"]["schema"])


def _has_path(document: dict[str, Any], schema: dict[str, Any], path: str) -> bool:
    """``path`` is in the schema, or in the description of a free-form object on the way (Verify's
    factor ``binding``: "For totp, this is `binding.secret` and `binding.uri`")."""
    for name in path.split("."):
        while schema.get("type") == "array":
            schema = _resolve(document, schema["items"])
        if "properties" not in schema:
            return f"`{path}`" in schema.get("description", "")
        schema = schema["properties"].get(name)
        if schema is None:
            return False
        schema = _resolve(document, schema)
    return True


@pytest.mark.parametrize(("spec_file", "catalogue", "prefix", "host", "rules"), CATALOGUES, ids=IDS)
def test_where_an_answer_carries_the_credential_it_issues_is_in_the_spec(spec_file, catalogue, prefix, host,
                                                                        rules) -> None:
    """The core withholds what ``secret`` names (proxy/answers.py): a path the spec's answer lacks would
    let the credential through, and an answer with an obviously secret field that no ``secret`` names too."""
    document = spec(spec_file)
    operations = spec_operations(document)
    for key, entry in entries(catalogue).items():
        schema = _answer_schema(document, operations[key]) if "secret" in entry else None
        for path in ([entry["secret"]] if isinstance(entry.get("secret"), str) else entry.get("secret", [])):
            assert entry["kind"] == "issues_credentials" and schema is not None, key
            assert _has_path(document, schema, path), f"{key}: its answer has no {path}"
    for key in ("POST /api-keys", "POST /2010-04-01/Accounts/{AccountSid}/Keys.json",
                "POST /2010-04-01/Accounts.json", "POST /2010-04-01/Accounts/{AccountSid}/SigningKeys.json"):
        held = entries(catalogue).get(key)
        assert held is None or held.get("secret"), f"{key} hands out a credential its catalogue entry does not name"
