"""Each vendor's operations as MCP tools (vendors/tools.py): one tool per catalogued operation,
names valid and unique, schemas valid and self-contained, Stripe's generated file held to the
installed stripe-python, and every tool call's request read back by the adapter's own
``parse_request`` as the operation the tool names, with the arguments as its parameters and the
vault key (and Twilio's account) as its credentials.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import pytest
import stripe
from jsonschema import Draft202012Validator

from vendors import registry
from vendors.base import RequestRejected, VendorAdapter
from vendors.stripe import catalogue as stripe_catalogue
from vendors.stripe import toolgen
from vendors.stripe import tools as stripe_tools
from vendors.stripe.routes import NOT_SERVED
from vendors.tools import TOOL_NAME, UPLOAD_NOTE, Tool, ToolArgumentsInvalid, trimmed

ADAPTERS = {adapter.name: adapter for adapter in registry.built_in()}
ACCOUNT = "AC" + "a1" * 16
VAULT_KEY = "tg_k1x2y3_" + "s" * 32
SERVICE = "VA" + "b2" * 16


def tool(vendor: str, name: str) -> Tool:
    found = [t for t in ADAPTERS[vendor].tools() if t.name == name]
    assert len(found) == 1, f"{vendor}: {len(found)} tools named {name}"
    return found[0]


def parsed_back(vendor: str, name: str, arguments: Mapping[str, Any], account: str | None = None
                ) -> tuple[Tool, Any, Any]:
    """The tool's request, as the adapter reads it when it arrives (the path percent-decoded, as ASGI does)."""
    adapter: Any = ADAPTERS[vendor]
    chosen = tool(vendor, name)
    request = adapter.tool_request(chosen, arguments, VAULT_KEY, account)
    parsed = adapter.parse_request(request.method, unquote(request.path), request.query, request.headers,
                                   request.body)
    return chosen, parsed, adapter.presented_credentials(request.headers)


def endpoint_of(t: Tool) -> str:
    return f"{t.method} {t.path}"


@pytest.mark.parametrize("vendor", sorted(ADAPTERS))
def test_every_operation_has_exactly_one_tool(vendor: str) -> None:
    adapter: Any = ADAPTERS[vendor]
    operations = {(op.method, op.path): op for op in adapter.operations()}
    tools = list(adapter.tools())
    assert sorted((t.method, t.path) for t in tools) == sorted(operations)
    for t in tools:
        operation = operations[(t.method, t.path)]
        assert (t.kind, t.priced) == (operation.kind, operation.priced), t.name


@pytest.mark.parametrize("vendor", sorted(ADAPTERS))
def test_names_are_unique_and_every_client_takes_them(vendor: str) -> None:
    names = [t.name for t in ADAPTERS[vendor].tools()]
    assert len(set(names)) == len(names)
    assert [n for n in names if not TOOL_NAME.match(n)] == []


@pytest.mark.parametrize("vendor", sorted(ADAPTERS))
def test_schemas_are_valid_self_contained_json_schema(vendor: str) -> None:
    for t in ADAPTERS[vendor].tools():
        Draft202012Validator.check_schema(t.input_schema)
        assert t.input_schema["type"] == "object" and isinstance(t.input_schema["properties"], dict), t.name
        assert "$ref" not in json.dumps(t.input_schema), t.name
        assert t.title and len(t.description) <= 1000, t.name


def test_the_stripe_file_is_what_the_installed_stripe_python_gives() -> None:
    """Regenerate tools.json from stripe-python: when the SDK changes, this fails until
    ``python -m vendors.stripe.toolgen --write`` is run (and the diff read)."""
    assert toolgen.dumps(toolgen.generate()) == stripe_tools.TOOLS.read_text(encoding="utf-8")


def test_the_stripe_file_has_one_tool_per_catalogue_entry_and_serves_all_but_the_unserved() -> None:
    document = json.loads(stripe_tools.TOOLS.read_text(encoding="utf-8"))
    catalogue = json.loads(stripe_catalogue.CATALOGUE.read_text(encoding="utf-8"))
    assert [(t["method"], t["template"], t["host"]) for t in document["tools"]] == \
        [(e["method"], e["path"], e["host"]) for e in catalogue["operations"]]
    offered = {endpoint_of(t) for t in ADAPTERS["stripe"].tools()}
    assert offered & NOT_SERVED.keys() == set() and len(offered) == len(document["tools"]) - len(NOT_SERVED)


def test_stripe_names_are_the_stripe_client_paths() -> None:
    client = stripe.StripeClient("sk_test_x")
    for name, method, path in [("charges_capture", "POST", "/v1/charges/{id}/capture"),
                               ("billing_meter_events_create", "POST", "/v1/billing/meter_events"),
                               ("v2_billing_meter_events_create", "POST", "/v2/billing/meter_events"),
                               ("checkout_sessions_create", "POST", "/v1/checkout/sessions"),
                               ("files_create", "POST", "/files/v1/files")]:
        assert endpoint_of(tool("stripe", name)) == f"{method} {path}"
    assert callable(client.v1.billing.meter_events.create) and callable(client.v2.billing.meter_events.create)


def test_a_long_stripe_name_is_shortened_the_same_way_every_time() -> None:
    path = ("test_helpers", "treasury", "outbound_transfers")
    long = toolgen.tool_name(path, "return_outbound_transfer")
    assert len(long) == 64 and TOOL_NAME.match(long)
    assert long == toolgen.tool_name(path, "return_outbound_transfer")
    assert long != toolgen.tool_name(path, "return_outbound_transfer_")
    assert long.startswith("test_helpers_treasury_outbound_transfers_return_outboun")
    assert toolgen.tool_name(("charges",), "capture") == "charges_capture"


def test_stripe_descriptions_and_schemas_are_stripe_pythons_own() -> None:
    capture = tool("stripe", "charges_capture")
    assert capture.description == trimmed(inspect.getdoc(stripe.ChargeService.capture) or "")
    refund = tool("stripe", "refunds_create").input_schema["properties"]
    # Literal['']|Dict[str, str]: a map of strings, or '' to unset it
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    assert refund["metadata"]["anyOf"] == [{"const": ""}, strings]
    assert refund["expand"]["type"] == "array" and refund["expand"]["items"] == {"type": "string"}
    assert refund["origin"]["enum"] == ["customer_balance"]  # Literal['customer_balance']: closed
    # Literal[...]|str: open, Stripe may add values; the known ones as examples
    assert refund["reason"]["type"] == "string"
    assert refund["reason"]["examples"] == ["duplicate", "fraudulent", "requested_by_customer"]
    assert refund["charge"]["description"] == "The identifier of the charge to refund."
    assert tool("stripe", "charges_capture").input_schema["required"] == ["charge"]
    items = tool("stripe", "checkout_sessions_create").input_schema["properties"]["line_items"]["items"]
    assert items["properties"]["quantity"]["type"] == "integer"
    price_data = items["properties"]["price_data"]
    assert "currency" in price_data["required"]
    cut = price_data["properties"]["recurring"]  # below MAX_NESTING: any object, still described
    assert cut["type"] == "object" and "properties" not in cut and cut["description"]


def test_a_stripe_refund_with_metadata_and_expand_reads_back_as_the_refund() -> None:
    arguments = {"charge": "ch_3Mx", "amount": 500, "metadata": {"order": "42", "note": "late & cold"},
                 "expand": ["charge", "payment_intent"]}
    chosen, parsed, credentials = parsed_back("stripe", "refunds_create", arguments)
    assert parsed.endpoint == endpoint_of(chosen) == "POST /v1/refunds"
    assert dict(parsed.params) == {**arguments, "amount": "500"}  # a form carries text
    assert (parsed.amount_minor, parsed.object_id, parsed.moves_money) == (500, "ch_3Mx", True)
    assert credentials.vault_key == VAULT_KEY


def test_a_stripe_checkout_session_with_line_items_reads_back_nested() -> None:
    arguments = {"mode": "payment", "success_url": "https://shop.example/ok?order=1",
                 "line_items": [{"price": "price_1", "quantity": 2},
                                {"price_data": {"currency": "eur", "unit_amount": 1200,
                                                "product_data": {"name": "Tea"}}, "quantity": 1}],
                 "allow_promotion_codes": True}
    chosen, parsed, credentials = parsed_back("stripe", "checkout_sessions_create", arguments)
    assert parsed.endpoint == endpoint_of(chosen)
    assert parsed.params["line_items"] == [
        {"price": "price_1", "quantity": "2"},
        {"price_data": {"currency": "eur", "unit_amount": "1200", "product_data": {"name": "Tea"}}, "quantity": "1"}]
    assert parsed.params["allow_promotion_codes"] == "true" and parsed.params["success_url"] == arguments["success_url"]
    assert credentials.vault_key == VAULT_KEY


def test_a_stripe_capture_fills_its_path_and_a_list_goes_in_the_query() -> None:
    _, capture, _ = parsed_back("stripe", "charges_capture", {"charge": "ch_9", "amount": 300})
    assert (capture.endpoint, capture.path, capture.object_id) == ("POST /v1/charges/{id}/capture",
                                                                   "/v1/charges/ch_9/capture", "ch_9")
    _, listed, _ = parsed_back("stripe", "charges_list", {"limit": 3, "customer": "cus_1", "expand": ["data.customer"]})
    assert (listed.endpoint, dict(listed.params)) == ("GET /v1/charges", {"limit": "3", "customer": "cus_1",
                                                                          "expand": ["data.customer"]})


def test_a_stripe_v2_call_is_json_and_another_hosts_has_its_route_prefix() -> None:
    arguments = {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_1", "value": "1"}}
    chosen, parsed, _ = parsed_back("stripe", "v2_billing_meter_events_create", arguments)
    assert (parsed.endpoint, dict(parsed.params)) == (endpoint_of(chosen), arguments)
    stream = tool("stripe", "v2_billing_meter_event_stream_create")
    assert stream.path.startswith("/meter_events/v2/")
    request = ADAPTERS["stripe"].tool_request(stream, {"events": []}, VAULT_KEY, None)  # type: ignore[attr-defined]
    assert request.path == "/meter_events/v2/billing/meter_event_stream"


def test_a_twilio_message_with_two_media_urls_fills_the_account_and_reads_back() -> None:
    arguments = {"To": "+14155550100", "From": "+14155550199", "Body": "Your order has shipped.",
                 "MediaUrl": ["https://cdn.example/a.png", "https://cdn.example/b.png"]}
    chosen, parsed, credentials = parsed_back("twilio", "create_message", arguments, ACCOUNT)
    assert "AccountSid" not in chosen.input_schema["properties"]
    assert parsed.endpoint == endpoint_of(chosen) == "POST /2010-04-01/Accounts/{AccountSid}/Messages.json"
    assert dict(parsed.params) == {**arguments, "MediaUrl": tuple(arguments["MediaUrl"])}
    assert (parsed.account, parsed.recipients) == (ACCOUNT, ("+14155550100",))
    assert (credentials.vault_key, credentials.account) == (VAULT_KEY, ACCOUNT)


def test_a_twilio_verification_reads_back_on_the_verify_host() -> None:
    arguments = {"ServiceSid": SERVICE, "To": "+14155550100", "Channel": "sms"}
    chosen, parsed, credentials = parsed_back("twilio", "verify_create_verification", arguments, ACCOUNT)
    assert parsed.endpoint == endpoint_of(chosen) == "POST /verify/v2/Services/{ServiceSid}/Verifications"
    assert (parsed.host, parsed.account, dict(parsed.params)) == ("verify", ACCOUNT, {"To": "+14155550100",
                                                                                      "Channel": "sms"})
    assert (credentials.vault_key, credentials.account) == (VAULT_KEY, ACCOUNT)


def test_a_twilio_lookup_percent_encodes_its_number_in_the_path() -> None:
    request = ADAPTERS["twilio"].tool_request(  # type: ignore[attr-defined]
        tool("twilio", "lookups_fetch_phone_number"), {"PhoneNumber": "+14155550100"}, VAULT_KEY, ACCOUNT)
    assert (request.method, request.path, request.body) == ("GET", "/lookups/v2/PhoneNumbers/%2B14155550100", b"")
    _, parsed, _ = parsed_back("twilio", "lookups_fetch_phone_number", {"PhoneNumber": "+14155550100"}, ACCOUNT)
    assert parsed.endpoint == "GET /lookups/v2/PhoneNumbers/{PhoneNumber}"


def test_a_twilio_tool_takes_no_account_of_the_agents_own() -> None:
    with pytest.raises(ToolArgumentsInvalid) as refused:
        ADAPTERS["twilio"].tool_request(tool("twilio", "create_message"),  # type: ignore[attr-defined]
                                        {"To": "+14155550100", "Body": "hi", "AccountSid": "AC" + "ff" * 16},
                                        VAULT_KEY, ACCOUNT)
    assert "AccountSid" in refused.value.message and refused.value.reason == "invalid_tool_arguments"


def test_a_twilio_tool_without_the_keys_account_is_refused() -> None:
    with pytest.raises(ToolArgumentsInvalid) as refused:
        ADAPTERS["twilio"].tool_request(tool("twilio", "create_message"), {"To": "+14155550100"},  # type: ignore
                                        VAULT_KEY, None)
    assert refused.value.reason == "invalid_tool_arguments"


def test_a_resend_email_to_a_list_with_tags_reads_back() -> None:
    arguments = {"from": "Shop <shop@acme.example>", "to": ["ana@acme.example", "bo@acme.example"],
                 "subject": "Shipped", "html": "<p>On its way.</p>", "tags": [{"name": "kind", "value": "order"}]}
    chosen, parsed, credentials = parsed_back("resend", "emails_send", arguments)
    assert parsed.endpoint == endpoint_of(chosen) == "POST /emails"
    assert parsed.params["emails"] == (arguments,)
    assert parsed.recipients == ("ana@acme.example", "bo@acme.example") and parsed.units == 2
    assert credentials.vault_key == VAULT_KEY


def test_a_resend_get_names_its_id_in_the_path() -> None:
    chosen, parsed, _ = parsed_back("resend", "emails_get", {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"})
    assert parsed.endpoint == endpoint_of(chosen) and parsed.object_id == "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


@pytest.mark.parametrize(("vendor", "name", "arguments", "param"), [
    ("stripe", "refunds_create", {"charge": "ch_1", "amount": "five"}, "amount"),
    ("stripe", "charges_capture", {"amount": 5}, None),  # the path's charge is missing
    ("twilio", "create_message", {"To": "+14155550100", "MediaUrl": "https://one.example/a.png"}, "MediaUrl"),
    ("resend", "emails_send", {"from": "a@acme.example", "to": ["b@acme.example"], "subject": 7}, "subject"),
])
def test_arguments_the_schema_does_not_take_are_refused_by_name(vendor: str, name: str, arguments: dict[str, Any],
                                                               param: str | None) -> None:
    with pytest.raises(RequestRejected) as refused:
        ADAPTERS[vendor].tool_request(tool(vendor, name), arguments, VAULT_KEY, ACCOUNT)  # type: ignore[attr-defined]
    assert refused.value.reason == "invalid_tool_arguments" and refused.value.status == 400
    assert refused.value.param == param and refused.value.endpoint == endpoint_of(tool(vendor, name))
    assert name in refused.value.message


@pytest.mark.parametrize("charge", ["ch_1/../../v1/payouts", "..", "ch_1?amount=1", "ch 1", "ch_1%2F", ""])
def test_a_path_argument_is_one_segment_or_refused(charge: str) -> None:
    with pytest.raises(ToolArgumentsInvalid) as refused:
        ADAPTERS["stripe"].tool_request(tool("stripe", "charges_capture"), {"charge": charge},  # type: ignore
                                        VAULT_KEY, None)
    assert (refused.value.reason, refused.value.param) == ("invalid_tool_arguments", "charge")


def test_an_upload_carries_its_file_as_text_and_reads_back_as_a_file_part() -> None:
    csv = "email,first_name\nana@acme.example,Ana\n"
    _, parsed, _ = parsed_back("stripe", "files_create", {"file": csv, "purpose": "dispute_evidence",
                                                          "file_link_data": {"create": True}})
    assert parsed.endpoint == "POST /files/v1/files" and parsed.host == "files"
    assert parsed.params["file"]["size"] == len(csv) and parsed.params["file_link_data"] == {"create": "true"}
    _, imported, _ = parsed_back("resend", "contacts_create_import", {"file": csv, "on_conflict": "upsert"})
    assert imported.endpoint == "POST /contacts/imports"
    assert all(tool(v, n).description.startswith(UPLOAD_NOTE) for v, n in [("stripe", "files_create"),
                                                                            ("resend", "contacts_create_import")])
    with pytest.raises(ToolArgumentsInvalid) as refused:
        ADAPTERS["stripe"].tool_request(tool("stripe", "files_create"),  # type: ignore[attr-defined]
                                        {"file": {"bytes": [1, 2]}, "purpose": "dispute_evidence"}, VAULT_KEY, None)
    assert refused.value.param == "file"


def test_a_refusal_names_the_rule_and_never_quotes_the_value() -> None:
    """The message goes to the audit row and to the model: what the schema wants, not what was sent."""
    card = "4242424242424242"
    with pytest.raises(ToolArgumentsInvalid) as refused:
        ADAPTERS["stripe"].tool_request(tool("stripe", "refunds_create"),  # type: ignore[attr-defined]
                                        {"charge": card, "amount": card, "origin": card}, VAULT_KEY, None)
    assert card not in refused.value.message
    assert 'amount: must satisfy type: "integer"' in refused.value.message
    assert 'origin: must satisfy enum: ["customer_balance"]' in refused.value.message


def test_a_plugin_without_tools_is_still_an_adapter() -> None:
    from tests.plugins.acme import AcmeAdapter

    assert isinstance(AcmeAdapter(), VendorAdapter) and getattr(AcmeAdapter(), "tools", None) is None


def sample(schema: Mapping[str, Any], name: str) -> Any:
    """A value the schema takes, for a sweep that only routes: a Sid of the pattern's prefix, a phone
    number where one is asked, the first of an enum, one of each array and required field."""
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return sample(options[-1], name)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "string":
        sid = re.match(r"\^\(?([A-Z]{2})", schema.get("pattern", ""))
        return (sid.group(1) + "ab" * 16 if sid else "+14155550100" if schema.get("format") == "phone-number"
                else "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" if "id" in name.lower() else "x1")
    if kind == "array":
        return [sample(schema.get("items", {}), name)]
    if kind == "object":
        return {k: sample(v, k) for k, v in schema.get("properties", {}).items() if k in schema.get("required", [])}
    return {"integer": 1, "number": 1, "boolean": True}.get(kind, "x1")


@pytest.mark.parametrize("vendor", sorted(ADAPTERS))
def test_every_tools_request_reaches_the_operation_the_tool_names(vendor: str) -> None:
    """Each tool called with its required arguments: the adapter reads the request as the tool's
    operation (or refuses what the values say, still naming it), never as another or as unknown."""
    adapter: Any = ADAPTERS[vendor]
    wrong = []
    for chosen in adapter.tools():
        schema = chosen.input_schema
        arguments = {name: sample(schema["properties"][name], name) for name in schema.get("required", [])}
        request = adapter.tool_request(chosen, arguments, VAULT_KEY, ACCOUNT)
        try:
            got = adapter.parse_request(request.method, unquote(request.path), request.query, request.headers,
                                        request.body).endpoint
        except RequestRejected as exc:
            got = exc.endpoint if exc.reason not in ("unknown_operation", "invalid_path") else exc.reason
        if got != endpoint_of(chosen):
            wrong.append((chosen.name, got))
    assert wrong == []
