"""The strict TwiML reader (vendors/twilio/twiml.py) and the call facts built on it: hostile XML
refused, every leg extracted, as twilio-python's own TwiML builder writes it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from twilio.twiml.voice_response import Dial, VoiceResponse

from vendors.base import RequestRejected
from vendors.twilio import calls, twiml

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
          "<Response><Say>&b;</Say></Response>")
XXE = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response><Dial>&x;</Dial></Response>'


def test_every_leg_the_sdks_builder_writes_is_read() -> None:
    response = VoiceResponse()
    dial = Dial(caller_id="+15005550006", action="https://hooks.acme.example/after")
    dial.number("+33 6 12 34 56 78", url="https://whisper.acme.example/x")
    dial.sip("sip:alice@pbx.acme.example")
    dial.client("bob")
    response.append(dial)
    response.say("Goodbye & thanks")
    response.play("https://cdn.example/tone.mp3")
    response.redirect("https://next.acme.example/step")
    legs = twiml.read(str(response))
    assert legs.dialled == ["+33612345678", "sip:alice@pbx.acme.example", "client:bob"]
    assert legs.urls == ["https://hooks.acme.example/after", "https://whisper.acme.example/x",
                         "https://next.acme.example/step"]
    assert legs.caller_ids == ["+15005550006"]


def test_say_play_conference_and_queue_dial_nobody() -> None:
    legs = twiml.read("<Response><Say>hi <break/> there</Say><Play>https://cdn.example/a.mp3</Play>"
                      "<Dial><Conference>room</Conference></Dial><Dial><Queue>support</Queue></Dial></Response>")
    assert (legs.dialled, legs.urls) == ([], [])


@pytest.mark.parametrize("document, why", [
    (LAUGHS, "DOCTYPE"),
    (XXE, "DOCTYPE"),
    ("<Response><Say>&x;</Say></Response>", "not well-formed"),
    ("<Response><Connect><Stream url='wss://x.example'/></Connect></Response>", "<Connect>"),
    ("<Response><Sms to='+33612345678'>hi</Sms></Response>", "<Sms>"),
    ("<Response><Dial><Number><Sip>sip:a@b.example</Sip></Number></Dial></Response>", "<Sip> in <Number>"),
    ("<Response><Dial>+336 <!-- split --> 12345678</Dial></Response>", "comments"),
    ("<?xml-stylesheet href='x'?><Response/>", "processing instructions"),
    ("<t:Response xmlns:t='urn:x'/>", "<t:Response>"),
    ("<Response/><Response/>", "not well-formed"),
    ("<Say>hi</Say>", "where <Response> belongs"),
    ("<Response><Dial>0612345678</Dial></Response>", "not an E.164 number"),
    ("<Response><Dial><Sip>tel:+33612345678</Sip></Dial></Response>", "not a sip: URI"),
    ("<Response><Dial>+14155550100<Number>+33612345678</Number></Dial></Response>", "mixes text"),
    ("<Response><Dial></Dial></Response>", "empty <Dial>"),
    ("<Response><Say>" + "<p>" * 8 + "</p>" * 8 + "</Say></Response>", "deeper"),
    ("<Response>" + "<Pause/>" * 201 + "</Response>", "more than 200"),
    ("<Response>" + " " * 4000 + "</Response>", "longer than 4000"),
    ("<Response><Hangup>now</Hangup></Response>", "text in <Hangup>"),
])
def test_hostile_or_ambiguous_twiml_is_refused(document: str, why: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        twiml.read(document)
    assert refused.value.reason == "invalid_parameter" and refused.value.param == "Twiml"
    assert why in refused.value.message


def test_a_sip_or_client_leg_has_no_country_and_the_highest_price() -> None:
    facts = calls.create_facts({"To": "+14155550100", "From": "+15005550006",
                                "Twiml": "<Response><Dial><Sip>sip:a@pbx.example</Sip></Dial></Response>"})
    assert facts.recipients == ("+14155550100", "sip:a@pbx.example") and facts.countries == ("US", "ZZ")


@pytest.mark.parametrize("params, reason", [
    ({"Twiml": "<Response/>", "Url": "https://a.example/t"}, "ambiguous_parameter"),
    ({"Url": "https://a.example/t", "ApplicationSid": "AP" + "0" * 32}, "ambiguous_parameter"),
    ({"Url": "/relative/twiml"}, "invalid_parameter"),
    ({"Twiml": "<Response><Redirect>next.xml</Redirect></Response>"}, "invalid_parameter"),
])
def test_instructions_that_could_be_read_two_ways_are_refused(params: dict[str, str], reason: str) -> None:
    with pytest.raises(RequestRejected) as refused:
        calls.create_facts({"To": "+14155550100", "From": "+15005550006", **params})
    assert refused.value.reason == reason


def test_every_source_of_unseen_twiml_is_named() -> None:
    facts = calls.create_facts({"To": "+14155550100", "From": "+15005550006", "Url": "https://Hooks.Acme.example/t",
                                "FallbackUrl": "https://backup.acme.example/t"})
    assert facts.instruction_sources == ("hooks.acme.example", "backup.acme.example")
    app = calls.update_facts({"ApplicationSid": "AP" + "0" * 32})
    assert app.instruction_sources == ("application:AP" + "0" * 32,) and app.moves_money
    hangup = calls.update_facts({"Status": "completed"})
    assert (hangup.recipients, hangup.instruction_sources, hangup.moves_money) == ((), (), False)
    assert calls.highest_rate() == Decimal("0.5000")
