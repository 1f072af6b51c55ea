"""Warnings about a valid policy's scope and guards rather than its endpoint list.

``warnings.review`` says what each allowed pattern matches; these say who the allowed
operations can reach and what the policy's own settings leave open: an operation that reaches
people with no recipient rule to check whom, a recipient rule that admits more than it reads as
(the unknown country, a wildcard host whose pages instruct calls, a segment mailed whole), a
duplicate guard missing where money moves or set so long it refuses honest repeats, stop
conditions that halt nothing (shadow mode) or halt a run on its first hiccup, derived
idempotency keys that calls without a run id do not get, a ``priced_after`` entry that changes
nothing, and a ``credentials.hand_out`` entry, which lets the agent walk away with a vendor
credential (or, matching nothing that issues one, changes nothing). Only generic policy fields
and the catalogue's Operation kinds and priced flags are read, so the core stays vendor-blind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vendors.base import Operation
from vendors.endpoints import PathPattern

UNKNOWN_COUNTRY = "ZZ"  # what adapters report for a leg with no country (SIP URI, client, unknown prefix)
LONG_WINDOW_S = 3600  # past an hour, the guard refuses repeats an agent means, such as a daily reminder

Matcher = Callable[[PathPattern, Operation], bool]


def exposure(document: Mapping[str, Any], allowed: dict[str, list[Operation]],
             known: Sequence[Operation], matches: Matcher) -> list[str]:
    """``allowed``: each allowed pattern and the operations it matches."""
    ops = [op for matched in allowed.values() for op in matched]
    return [*_unscoped(document, allowed), *_recipient_rules(document),
            *_duplicates(document, ops), *_stops(document), *_derived_keys(document),
            *_priced_after(document, known, matches), *_hand_out(document, known, matches)]


def _unscoped(document: Mapping[str, Any], allowed: dict[str, list[Operation]]) -> list[str]:
    recipients = document.get("recipients", {})
    if any(recipients.get(rule) for rule in ("countries", "numbers", "domains", "addresses", "segments")):
        return []
    return [f"{pattern} allows {op.method} {op.path}, which reaches people, and no recipients rule limits "
            "whom: it may reach anyone." for pattern, matched in allowed.items()
            for op in matched if op.kind == "reaches_people"]


def _recipient_rules(document: Mapping[str, Any]) -> list[str]:
    recipients = document.get("recipients", {})
    found: list[str] = []
    if UNKNOWN_COUNTRY in recipients.get("countries", ()):
        found.append(f"recipients.countries lists {UNKNOWN_COUNTRY} (no known country): every SIP address, "
                     "client and number without a known country is admitted, wherever it leads.")
    found += [f"recipients.twiml_urls allows {host}: whoever can serve a page under that domain decides whom "
              "calls reach, unseen by Tollgate." for host in recipients.get("twiml_urls", ()) if host.startswith("*.")]
    if recipients.get("segments") and document.get("max_recipients") is None:
        found.append("recipients.segments admits broadcasts to " + ", ".join(recipients["segments"])
                     + ": each mails every contact in the segment, and no max_recipients bounds how many.")
    return found


def _duplicates(document: Mapping[str, Any], ops: list[Operation]) -> list[str]:
    window = document.get("duplicates", {}).get("window_s")
    if window is None:
        moving = [f"{op.method} {op.path}" for op in ops if op.kind == "moves_money"]
        return [f"This policy allows {moving[0]}, which moves money, with no duplicates window: the same call "
                "sent twice is forwarded twice."] if moving else []
    if window > LONG_WINDOW_S:
        return [f"duplicates.window_s is {window} s: an identical call within {window // 3600} h of the first "
                "is refused as duplicate_call, even when the agent means to repeat it."]
    return []


def _derived_keys(document: Mapping[str, Any]) -> list[str]:
    """Keys are derived from the run (proxy/idempotency.py): a call with no run id gets none."""
    if not document.get("idempotency", {}).get("derive") or document.get("require_run_id"):
        return []
    return ["idempotency.derive gives a key only to calls that carry an X-Agent-Run-Id, and require_run_id is "
            "false: a call without one is forwarded with no derived key (set require_run_id to cover every call)."]


def _stops(document: Mapping[str, Any]) -> list[str]:
    stop = document.get("stop")
    if not stop:
        return []
    if document.get("mode") == "shadow":
        return ["stop is set and mode is shadow: a shadow policy halts no run (it still refuses one halted by "
                "another key or an operator)."]
    found = []
    if (stop.get("max_refusals") or {}).get("count") == 1:
        found.append("stop.max_refusals.count is 1: the run's first refusal halts it, for every key.")
    if stop.get("consecutive_errors") == 1:
        found.append("stop.consecutive_errors is 1: one vendor failure (a timeout, a 5xx) halts the run, "
                     "for every key.")
    return found


def _priced_after(document: Mapping[str, Any], known: Sequence[Operation], matches: Matcher) -> list[str]:
    found: list[str] = []
    for entry in dict.fromkeys(document.get("endpoints", {}).get("priced_after", ())):
        matched = [op for op in known if matches(PathPattern.parse(entry), op)]
        if not matched:
            found.append(f"endpoints.priced_after lists {entry}, which matches no operation Tollgate knows.")
        elif not any(op.priced in ("after", "set") for op in matched):  # "set": until the prices are
            found.append(f"endpoints.priced_after lists {entry}, which is priced before it is sent anyway: "
                         "the entry changes nothing.")
    return found


def _hand_out(document: Mapping[str, Any], known: Sequence[Operation], matches: Matcher) -> list[str]:
    found: list[str] = []
    for entry in dict.fromkeys(document.get("credentials", {}).get("hand_out", ())):
        issuing = [op for op in known if op.kind == "issues_credentials" and matches(PathPattern.parse(entry), op)]
        if not issuing:
            found.append(f"credentials.hand_out lists {entry}, which matches nothing that issues credentials: "
                         "the entry changes nothing.")
        else:
            found.append(f"credentials.hand_out lists {entry}: the agent gets the credential its answer carries "
                         "and can use it without Tollgate, out of reach of this policy and the audit table.")
    return found
