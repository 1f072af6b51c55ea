"""Calls whose outcome nobody knows: a vendor timed out, the connection broke mid-answer, or the
vendor answered a call that moves money with a 5xx.

Such a call may have moved money, so it is settled at its estimate (decision ``error``,
``cost_source = 'estimated'``) and stays counted against every cap as its reservation was:
charging nothing would let a failing vendor take any number of calls past a cap. A POST to a
vendor that de-duplicates by a header carries one, so that the vendor's own record of the call
can name it.
"""

from __future__ import annotations

import dataclasses

from vendors.base import ParsedRequest, VendorAdapter


def with_idempotency_key(adapter: VendorAdapter, method: str, headers: dict[str, str], parsed: ParsedRequest,
                         request_id: str) -> ParsedRequest:
    """A POST to a vendor that de-duplicates POSTs by a header carries one: the agent's, or one made
    from Tollgate's request id (added to ``headers``, which are forwarded). Should its outcome turn
    out uncertain, the vendor's record of it can be found by that key; and the vendor never runs
    the call twice for one key, however the agent retries it."""
    header = adapter.idempotency_header
    if header is None or method != "POST" or headers.get(header):
        return parsed
    headers[header] = f"tollgate-{request_id}"
    return dataclasses.replace(parsed, idempotency_key=headers[header])


def uncertain_answer(status: int) -> str:
    """The audit row's message for a vendor answer that does not say whether the call happened."""
    return (f"The vendor answered {status}, which does not say whether the call happened: its estimate "
            "stays counted, as a timeout's is.")
