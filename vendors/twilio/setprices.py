"""Verify verifications and Lookups data packages, priced from the prices an operator sets (pure).

Twilio bills both per call, but neither price is in Twilio's Pricing API (vendors/twilio/pricesync.py
reads what it lists) or in any API description Tollgate holds, and Tollgate invents no number. So
the operator sets them from their own Twilio pricing page or contract, per account or key:
``tollgate prices set twilio verify:sms 0.05 --account AC...``, ``... lookups:line_type_intelligence
0.008 ...`` (vendors/pricebook.py installs them from ``vendor_prices``). The kinds:

* ``verify:<Channel>``: one verification sent (``POST /v2/Services/{ServiceSid}/Verifications``) by
  the channel its ``Channel`` names (the spec lists email, sms, whatsapp, call, sna and auto). Twilio
  bills per verification: the channel's cost (the spec's Attempts ``price``) and a fee per successful
  verification ("the costs related to the succeeded verifications are not included" there), so the
  price set is both together; a check (``VerificationCheck``) is not billed on its own and is free.
  ``auto`` lets Twilio choose the channel: set it at the highest of those it may choose.
* ``lookups:<field>``: one data package of a Lookups v2 fetch (``Fields``, comma separated, as the
  spec lists them); a fetch costs the sum of its packages, and one without ``Fields`` (formatting
  only) costs 0.

A kind without a set price leaves the call unpriced: refused ``cost_unknown`` unless the policy lists
the endpoint under ``endpoints.priced_after``, with a message naming the kind and the command that
sets it (``unpriced``).
"""

from __future__ import annotations

from decimal import Decimal

from vendors import money, pricebook
from vendors.base import ParsedRequest, SettablePrice

VENDOR = "twilio"
VERIFY_RULE = "verify"  # the catalogue's price rule of a verification sent
LOOKUP_RULE = "lookup"
# Channel, as the Verifications spec's Channel parameter lists them.
CHANNELS = ("sms", "call", "email", "whatsapp", "sna", "auto")
# Fields, as the Lookups v2 spec's Fields parameter lists them.
PACKAGES = ("validation", "caller_name", "sim_swap", "call_forwarding", "line_status", "line_type_intelligence",
            "identity_match", "reassigned_number", "sms_pumping_risk", "phone_number_quality_score", "pre_fill")
WHERE = "your Twilio console's pricing pages or your contract"

SETTABLE: tuple[SettablePrice, ...] = (
    *(SettablePrice(f"verify:{channel}", "verification sent",
                    (f"a Verify verification by {channel}: the channel's cost and the fee per successful verification "
                     f"together (checks are not billed on their own); from {WHERE}")
                    + ("; auto lets Twilio choose: the highest channel it may choose" if channel == "auto" else ""))
      for channel in CHANNELS),
    *(SettablePrice(f"lookups:{package}", "lookup with the package",
                    f"the Lookups v2 data package {package} (Fields={package}), per lookup; from {WHERE}")
      for package in PACKAGES),
)
KINDS = frozenset(price.kind for price in SETTABLE)


def kinds_of(request: ParsedRequest, rule: str) -> tuple[str, ...]:
    """The kinds a call is priced by: its verification's channel, or its lookup's packages (each once)."""
    if rule == VERIFY_RULE:
        channel = request.params.get("Channel")
        return (f"verify:{channel if isinstance(channel, str) else ''}",)
    fields = request.params.get("Fields")
    named = fields.split(",") if isinstance(fields, str) else []
    return tuple(dict.fromkeys(f"lookups:{name.strip()}" for name in named if name.strip()))


def usd(request: ParsedRequest, rule: str) -> Decimal | None:
    """The sum of the set prices of the call's kinds; None when any has none (or is no kind Twilio lists)."""
    total = Decimal(0)
    for kind in kinds_of(request, rule):
        price = pricebook.own_usd(VENDOR, request.price_scope, kind) if kind in KINDS else None
        if price is None:
            return None
        total += price
    return total.quantize(money.MICRO)


def unpriced(request: ParsedRequest, rule: str) -> tuple[str, str] | None:
    """Why the call has no price, and the command that gives it one: for the cost_unknown refusal."""
    kinds = kinds_of(request, rule)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        listed = ", ".join(sorted(k for k in KINDS if k.startswith(unknown[0].split(":")[0] + ":")))
        return (f"{unknown[0]!r} is not a channel or data package Twilio's API description lists (Tollgate prices "
                f"{listed})", "Use one of those")
    missing = [kind for kind in kinds if pricebook.find(VENDOR, request.price_scope, kind) is None]
    if not missing:
        return None
    account = request.price_scope.account or request.account
    commands = "; ".join(f"`{pricebook.set_command(VENDOR, kind, account)}`" for kind in missing)
    return (f"No price is set for Twilio {', '.join(missing)} (Tollgate ships none: Twilio's Pricing API does not "
            f"list it), so Tollgate cannot price the call", f"Set yours from {WHERE}: {commands}")
