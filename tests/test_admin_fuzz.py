"""The admin API fuzzed against its own OpenAPI document (schemathesis): for generated
valid and invalid requests to every operation, no 5xx, and every answer's status, content
type, headers and body conform to the document. Examples are few per operation, so the
suite stays fast; TOLLGATE_FUZZ_EXAMPLES raises them for a longer hunt.

The schema is loaded from ``proxy.admin.openapi`` at collection time (schemathesis's lazy
fixture loader does not run on pytest 9) and checked to be exactly what the server serves."""

from __future__ import annotations

import copy
import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from proxy.admin import openapi
from tests.support.tollgate import ADMIN_TOKEN
from vendors import registry

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
EXAMPLES = int(os.environ.get("TOLLGATE_FUZZ_EXAMPLES", "12"))

OPENAPI = openapi.document(registry.load().names())
schema = schemathesis.openapi.from_dict(copy.deepcopy(OPENAPI))
# Left out: "a request valid by the document is accepted". A policy document is valid by
# policy.schema.json and by rules no OpenAPI schema states (a Twilio cap needs an account,
# an endpoint pattern must name the vendor's API...), and ids the fuzzer invents do not
# exist. Every other check runs: no 5xx, invalid input refused, status codes, content
# types, headers (Allow on 405) and bodies as documented.
EXCLUDED = [positive_data_acceptance]


@schema.auth()
class AdminToken:
    """The admin token, set by schemathesis itself, so a case testing a missing token stays without it."""

    def get(self, case, context):
        return ADMIN_TOKEN

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def test_the_fuzzed_document_is_the_served_one(proxy_url):
    assert httpx.get(f"{proxy_url}/admin/v1/openapi.json", headers=AUTH).json() == OPENAPI


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_admin_api_keeps_to_its_openapi_document(case, proxy_url):
    case.call_and_validate(base_url=proxy_url, timeout=30, excluded_checks=EXCLUDED)


@pytest.mark.parametrize("method, path, code", [
    ("GET", "/admin/v1/audit?limit=1001", "invalid_parameter"),  # was clamped to 1000
    ("GET", "/admin/v1/approvals?status=AAA", "invalid_parameter"),  # was ignored
    ("GET", "/admin/v1/keys?vendr=stripe", "unknown_parameter"),  # a typo listed every key
    ("GET", "/admin/v1/audit?key_id=a&key_id=b", "duplicate_parameter"),
    ("GET", "/admin/v1/approvals?key_id=%00", "invalid_input"),  # was a 503 "database unavailable"
])
def test_what_the_fuzzer_found_stays_fixed(proxy_url, method, path, code):
    response = httpx.request(method, f"{proxy_url}{path}", headers=AUTH)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_a_405_lists_every_method_of_the_path(proxy_url):
    response = httpx.request("DELETE", f"{proxy_url}/admin/v1/policies", headers=AUTH)
    assert response.status_code == 405 and set(response.headers["allow"].split(", ")) >= {"GET", "POST"}
