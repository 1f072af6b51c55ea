"""A strict reader of inline TwiML (a call's ``Twiml`` parameter): every leg it dials (pure).

Why it exists: a call's ``To`` is only its first leg. ``<Response><Dial>+33612345678</Dial></Response>``
dials France from a call "to" the US; a policy that judged ``To`` alone would let it through
and price it as one US minute. So every leg inline TwiML dials is a recipient, held to the
same rules and priced like ``To``.

Why strict: Tollgate must read the document exactly as Twilio will, or it judges something
else. So it reads a small, known subset of the TwiML Twilio's own SDK builds
(twilio/twiml/voice_response.py) and refuses the rest rather than guessing:

* no DOCTYPE, no entity declarations, no processing instructions, no comments, no namespaces:
  no XXE, no billion laughs, no text split in ways two parsers may join differently;
* at most ``MAX_CHARS`` characters (Twilio's documented limit for ``Twiml``), ``MAX_DEPTH``
  levels and ``MAX_ELEMENTS`` elements;
* only the verbs and nouns in ``CHILDREN``, each only where TwiML puts it. Verbs that buy a
  service Tollgate has no price for or that it cannot see through (``<Connect>``, ``<Start>``,
  ``<Pay>``, ``<Sms>``, ``<Echo>``, ``<Application>``...) are refused.

What it returns (``Legs``): E.164 numbers (``<Dial>`` text or ``<Number>``), ``<Sip>`` URIs
(``sip:...``, from ``<Dial>`` and ``<Refer>``) and clients (``client:<identity>``), and every
URL whose answer is more TwiML (``<Redirect>``, and the ``action``/``url``/``waitUrl``...
attributes): Tollgate cannot see what those dial, so the caller treats them as TwiML by URL.
``<Dial callerId>`` values are the senders of the legs. ``<Play>``, ``<Say>``, ``<Conference>``
and ``<Queue>`` dial nobody.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

from vendors.base import RequestRejected

MAX_CHARS = 4000  # Twilio's own limit for the Twiml parameter (Calls create, in its API description)
MAX_DEPTH = 8
MAX_ELEMENTS = 200
E164 = re.compile(r"\+[1-9][0-9]{6,14}\Z")
NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
SIP_URI = re.compile(r"sips?:[^\s<>\"]{1,250}\Z", re.IGNORECASE)
CLIENT = re.compile(r"[A-Za-z0-9_.@:-]{1,256}\Z")
SSML = frozenset({"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"})
# Where each element may appear (its allowed children); "#text" allows text content.
CHILDREN: dict[str, frozenset[str]] = {
    "Response": frozenset({"Say", "Play", "Pause", "Hangup", "Reject", "Redirect", "Gather", "Dial", "Enqueue",
                           "Leave", "Record", "Refer"}),
    "Say": SSML | {"#text"},
    **{name: SSML | {"#text"} for name in SSML},
    "Play": frozenset({"#text"}),  # an audio URL: Twilio plays it, it is not TwiML
    "Pause": frozenset(), "Hangup": frozenset(), "Reject": frozenset(), "Leave": frozenset(),
    "Record": frozenset(),
    "Redirect": frozenset({"#text"}),
    "Gather": frozenset({"Say", "Play", "Pause"}),
    "Dial": frozenset({"#text", "Number", "Sip", "Client", "Conference", "Queue"}),
    "Number": frozenset({"#text"}),
    "Sip": frozenset({"#text"}),
    "Client": frozenset({"#text", "Identity", "Parameter"}),
    "Identity": frozenset({"#text"}),
    "Parameter": frozenset(),
    "Conference": frozenset({"#text"}),
    "Queue": frozenset({"#text"}),
    "Enqueue": frozenset({"#text"}),
    "Refer": frozenset({"Sip"}),
}
# Attributes whose value is a URL that answers with more TwiML (or a URL-ish callback Tollgate
# does not tell apart from one: over-strict on purpose).
URL_ATTRIBUTE = re.compile(r"(?:action|.*url)\Z", re.IGNORECASE)


@dataclass
class Legs:
    numbers: list[str] = field(default_factory=list)  # E.164
    sip: list[str] = field(default_factory=list)  # sip:... URIs
    clients: list[str] = field(default_factory=list)  # client:<identity>
    urls: list[str] = field(default_factory=list)  # TwiML by URL: what they dial is unseen
    caller_ids: list[str] = field(default_factory=list)  # <Dial callerId>

    @property
    def dialled(self) -> list[str]:
        """Every leg as a recipient: numbers, then SIP URIs, then clients."""
        return [*self.numbers, *self.sip, *self.clients]


@dataclass
class _Element:
    name: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)
    kids: list[str] = field(default_factory=list)


def read(document: str, param: str = "Twiml") -> Legs:
    """The legs of one TwiML document, or RequestRejected (``invalid_parameter``) naming why."""
    if len(document) > MAX_CHARS:
        raise _bad(param, f"is longer than {MAX_CHARS} characters")
    return _Reader(param).parse(document)


def _bad(param: str, why: str) -> RequestRejected:
    return RequestRejected("invalid_parameter", f"{param!r}: TwiML that {why} is not read by Tollgate: refused.",
                           param=param)


class _Reader:
    def __init__(self, param: str) -> None:
        self.param = param
        self.stack: list[_Element] = []
        self.count = 0
        self.legs = Legs()
        self.seen_root = False

    def parse(self, document: str) -> Legs:
        parser = expat.ParserCreate()  # no namespace processing: a prefixed name is refused below
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = lambda *_: self._refuse("declares a DOCTYPE")
        parser.EntityDeclHandler = lambda *_: self._refuse("declares entities")
        parser.ProcessingInstructionHandler = lambda *_: self._refuse("holds processing instructions")
        parser.CommentHandler = lambda *_: self._refuse("holds comments")
        parser.DefaultHandler = self._default
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        try:
            parser.Parse(document.encode("utf-8"), True)
        except expat.ExpatError as exc:
            raise _bad(self.param, f"is not well-formed XML ({expat.ErrorString(exc.code)})") from None
        if not self.seen_root:
            raise _bad(self.param, "has no <Response>")
        return self.legs

    def _refuse(self, why: str) -> None:
        raise _bad(self.param, why)

    def _default(self, data: str) -> None:
        if data.startswith("&"):  # an entity reference expat did not expand (none is declared)
            self._refuse("refers to an entity")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self.count += 1
        if self.count > MAX_ELEMENTS or len(self.stack) >= MAX_DEPTH:
            self._refuse(f"nests deeper than {MAX_DEPTH} or holds more than {MAX_ELEMENTS} elements")
        if not self.stack:
            if name != "Response" or self.seen_root:
                self._refuse(f"has <{name[:40]}> where <Response> belongs")
            self.seen_root = True
        elif name not in CHILDREN.get(self.stack[-1].name, ()) or name not in CHILDREN:
            self._refuse(f"puts <{name[:40]}> in <{self.stack[-1].name}> (not a verb or noun Tollgate governs there)")
        for attr, value in attrs.items():
            if not NAME.match(attr):
                self._refuse(f"has attribute {attr[:40]!r}")
            if URL_ATTRIBUTE.match(attr):
                self.legs.urls.append(value.strip())
        if name == "Dial" and "callerId" in attrs:
            self.legs.caller_ids.append("".join(attrs["callerId"].split()))
        if self.stack:
            self.stack[-1].kids.append(name)
        self.stack.append(_Element(name, attrs))

    def _text(self, data: str) -> None:
        if not self.stack:
            return
        top = self.stack[-1]
        if data.strip() and "#text" not in CHILDREN[top.name]:
            self._refuse(f"has text in <{top.name}>")
        top.text.append(data)

    def _end(self, name: str) -> None:
        element = self.stack.pop()
        text = "".join(element.text).strip()
        if text and element.kids and element.name in {"Dial", "Client"}:
            self._refuse(f"mixes text and elements in <{element.name}>")
        if element.name in {"Dial", "Number"} and text:
            self._number(text)
        elif element.name == "Sip":
            self._sip(text)
        elif element.name in {"Client", "Identity"} and text:
            self._client(text)
        elif element.name == "Client" and "Identity" not in element.kids:
            self._refuse("names no client identity")
        elif element.name == "Redirect":
            self.legs.urls.append(text)
        elif element.name == "Dial" and not element.kids:
            self._refuse("has an empty <Dial>")

    def _number(self, text: str) -> None:
        number = "".join(text.split())
        if not E164.match(number):
            self._refuse(f"dials {text[:40]!r}, not an E.164 number")
        self.legs.numbers.append(number)

    def _sip(self, text: str) -> None:
        if not SIP_URI.match(text):
            self._refuse(f"dials SIP {text[:40]!r}, not a sip: URI")
        self.legs.sip.append(text)

    def _client(self, text: str) -> None:
        if not CLIENT.match(text):
            self._refuse(f"dials client {text[:40]!r}")
        self.legs.clients.append(f"client:{text}")
