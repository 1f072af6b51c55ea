"""SMS segment counting: how many billable parts an SMS body becomes.

Carriers bill per segment, so this is the core of a Twilio estimate. The rules
(3GPP TS 23.038 / 23.040, as Twilio applies them):

* A body made only of GSM-7 characters is sent as GSM-7. Basic-table characters
  take one septet; extension-table characters (``^{}\\[~]|€`` and form feed) take
  two (an escape plus the character). One message holds 160 septets; past that
  the body is split into segments of 153 septets (7 go to the concatenation
  header), and a two-septet character is never split across two segments.
* Any other character makes the whole body UCS-2 (UTF-16): one message holds 70
  code units, concatenated segments 67. Characters outside the Basic Multilingual
  Plane (most emoji) are two code units (a surrogate pair) and are not split.

``segments("")`` is ("GSM-7", 0): an empty body is no SMS (Twilio sends media-only
messages as MMS, which the caller prices separately).
"""

from __future__ import annotations

# GSM 03.38 basic table, in code order, without 0x1B (the escape to the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs an escape septet plus itself.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def is_gsm7(body: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in body)


def segments(body: str) -> tuple[str, int]:
    """Return ("GSM-7" | "UCS-2", number of segments) for an SMS body."""
    if not body:
        return "GSM-7", 0
    if is_gsm7(body):
        return "GSM-7", _count([2 if ch in GSM7_EXTENSION else 1 for ch in body], GSM7_SINGLE, GSM7_PART)
    return "UCS-2", _count([2 if ord(ch) > 0xFFFF else 1 for ch in body], UCS2_SINGLE, UCS2_PART)


def _count(costs: list[int], single: int, part: int) -> int:
    if sum(costs) <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        # A character that does not fit whole starts the next segment: escapes and
        # surrogate pairs are never split, which can leave a segment one unit short.
        if used + cost > part:
            count, used = count + 1, 0
        used += cost
    return count
