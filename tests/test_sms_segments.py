"""vendors/sms.py: GSM-7 / UCS-2 segment counting, against known cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vendors.sms import GSM7_BASIC, GSM7_EXTENSION, is_gsm7, segments

EMOJI = "\U0001F600"  # outside the BMP: a surrogate pair, two UTF-16 code units
UCS = "\u00e7"  # 'ç' is not in GSM-7 (only 'Ç' is), so it forces UCS-2 while staying one code unit


@pytest.mark.parametrize(
    "length, expected",
    [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1530, 10), (1531, 11)],
)
def test_gsm7_boundaries(length: int, expected: int) -> None:
    assert segments("a" * length) == ("GSM-7", expected)


@pytest.mark.parametrize(
    "length, expected",
    [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_boundaries(length: int, expected: int) -> None:
    assert segments(UCS * length) == ("UCS-2", expected)


def test_empty_body_is_no_segment() -> None:
    assert segments("") == ("GSM-7", 0)


@pytest.mark.parametrize("char", sorted(GSM7_EXTENSION))
def test_extension_characters_count_two_septets(char: str) -> None:
    assert segments(char * 80) == ("GSM-7", 1)  # 160 septets
    assert segments(char * 81) == ("GSM-7", 2)  # 162 septets
    assert segments("a" * 159 + char) == ("GSM-7", 2)  # 161 septets


def test_euro_sign_is_gsm7_but_costs_two() -> None:
    assert segments("\u20ac" * 80) == ("GSM-7", 1)
    assert segments("Price: 5\u20ac") == ("GSM-7", 1)


def test_an_escaped_character_is_not_split_across_segments() -> None:
    # 152 + 2 + 152 = 306 septets would fit two segments of 153 if the escape pair could be split;
    # it cannot, so the euro sign opens segment two, which then overflows into a third.
    body = "a" * 152 + "\u20ac" + "a" * 152
    assert segments(body) == ("GSM-7", 3)
    # Moved one place earlier, the pair ends segment one exactly: 151 + 2 = 153, then 153.
    assert segments("a" * 151 + "\u20ac" + "a" * 153) == ("GSM-7", 2)


def test_emoji_counts_two_code_units() -> None:
    assert segments(EMOJI * 35) == ("UCS-2", 1)  # 70 code units
    assert segments(EMOJI * 35 + "a") == ("UCS-2", 2)  # 71
    assert segments("a" * 69 + EMOJI) == ("UCS-2", 2)  # 71


def test_a_surrogate_pair_is_not_split_across_segments() -> None:
    # 33 emoji fill 66 units; the 34th would need units 67-68, so it opens segment two.
    assert segments(EMOJI * 67) == ("UCS-2", 3)  # 134 units: naive 134/67 = 2
    assert segments("a" * 65 + EMOJI + "a" * 67) == ("UCS-2", 2)  # 134 units, the pair ends segment one
    assert segments("a" * 66 + EMOJI + "a" * 66) == ("UCS-2", 3)  # 134 units, the pair opens segment two


def test_one_non_gsm_character_turns_the_whole_body_ucs2() -> None:
    assert segments("a" * 100) == ("GSM-7", 1)
    assert segments("a" * 99 + UCS) == ("UCS-2", 2)
    assert segments("Hello! \U0001F44D") == ("UCS-2", 1)  # Twilio's own example body: num_segments "1"


@pytest.mark.parametrize("char", ["@", "\u00a3", "$", "\u00a5", "\u00e8", "\u00c7", "\n", "\r", "\u0394", "\u00df",
                                  "\u00a4", "\u00a1", "\u00bf", "\u00e0", "\u00c5", "\u00f1", "_", " "])
def test_basic_table_characters_are_single_septets(char: str) -> None:
    assert is_gsm7(char)
    assert segments(char * 160) == ("GSM-7", 1)
    assert segments(char * 161) == ("GSM-7", 2)


@pytest.mark.parametrize("char", ["\x1b", "`", "\u00e7", "\u00e1", "\u00ed", "\u2019", "\u201c", "\t", "\u00a0"])
def test_characters_outside_gsm7(char: str) -> None:
    assert not is_gsm7(char)
    assert segments(char)[0] == "UCS-2"


def test_the_gsm7_tables_have_their_published_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points minus the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


# --- properties --------------------------------------------------------------------------

GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=800)


def _septets(body: str) -> int:
    return sum(2 if ch in GSM7_EXTENSION else 1 for ch in body)


@settings(max_examples=300, deadline=None)
@given(GSM_TEXT)
def test_gsm7_count_is_bounded_by_the_septets(body: str) -> None:
    encoding, count = segments(body)
    assert encoding == "GSM-7"
    septets = _septets(body)
    if septets <= 160:
        assert count == (1 if body else 0)
    else:
        lower = -(-septets // 153)
        assert lower <= count <= lower + septets // 153  # each split can waste at most one septet


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_counts_without_error(body: str) -> None:
    encoding, count = segments(body)
    assert encoding in ("GSM-7", "UCS-2")
    assert count >= (1 if body else 0)
    units = len(body.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == "UCS-2" and units > 70:
        assert count >= -(-units // 67)


@settings(max_examples=200, deadline=None)
@given(GSM_TEXT, GSM_TEXT)
def test_appending_never_reduces_the_count(head: str, tail: str) -> None:
    assert segments(head + tail)[1] >= segments(head)[1]
