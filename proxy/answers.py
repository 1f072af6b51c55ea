"""What a vendor's answer may not carry back to the agent (DESIGN.md guarantee 9, and guarantee 5's
spirit for credentials the vendor issues).

The call has happened when these are judged: the vendor's answer is in hand. Two things keep it
from the agent: a customer outside the key's scope that it names, and a credential it hands out
(a new API key's secret, a subaccount's auth token), which the agent could then use without
Tollgate, out of reach of every rule and the audit table. The adapter reads both from the answer
(``ParsedResponse.revealed_customers`` and ``.credentials``, by its catalogue); the policy decides:
a credential reaches the agent only from an endpoint its ``credentials.hand_out`` names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from proxy.errors import Denial, Unavailable
from proxy.keys import KeyRecord
from vendors.base import ParsedRequest, ParsedResponse, RecordedObject

Records = Callable[[str, tuple[str, ...]], Awaitable[Mapping[str, RecordedObject]]]


async def withheld(key: KeyRecord, request: ParsedRequest, answer: ParsedResponse, records: Records) -> Denial | None:
    """Why the answer may not be returned, or None."""
    if answer.credentials and not key.policy.hands_out(request):
        issued = f" ({answer.object_id})" if answer.object_id else ""
        return Denial("credential_withheld", (
            f"{request.endpoint} issued a credential{issued}, and its answer carries the secret, which would let the "
            "agent act without Tollgate: Tollgate withheld it. Revoke it at the vendor, or list the endpoint in the "
            "key's policy under credentials.hand_out."))
    created = answer.created.object_id if answer.created else None  # a customer this call made is the key's
    unlisted = tuple(c for c in key.policy.customers_to_check(answer.revealed_customers) if c != created)
    if not unlisted:
        return None
    try:
        known = await records(key.records_key, unlisted) if key.policy.created_through_key else {}
    except Unavailable:  # cannot tell: the answer stays with Tollgate (the call itself happened)
        return Denial("answer_withheld", "Tollgate could not check this answer against the key's scope "
                                         "(its database is unreachable), so it withheld it.")
    return key.policy.check_answer(unlisted, known)


def outcome_reason(answer: ParsedResponse) -> str | None:
    """What the row of an answer returned as it came says happened besides the call itself."""
    if answer.credentials:
        return "credential_handed_out"  # the policy's hand_out let a credential go to the agent
    return "idempotent_replay" if answer.replayed else None
