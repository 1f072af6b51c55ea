"""The adapter protocol: the seam between the proxy core and one vendor.

An adapter is pure. It gets bytes and headers and returns parsed facts; it never
does I/O, never sees the database and never sees an upstream secret in plain text
except when asked to build the upstream auth header. Everything the core needs to
know about a vendor goes through the types in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # vendors/tools.py imports this module
    from vendors.tools import Tool, ToolRequest


class TollgateError(Exception):
    """The root of every error Tollgate raises on purpose; proxy/errors.py draws the whole tree.

    ``reason`` is a stable code (proxy/reasons.py lists them all; it ends up in the audit table
    and in error bodies); ``message`` is what a person reads, so it names the rule. It lives here,
    in the seam, because adapters raise ``RequestRejected`` and import nothing from proxy/.
    """

    status = 500

    def __init__(self, reason: str, message: str, *, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        if status is not None:
            self.status = status


class Refused(TollgateError):
    """A call to a vendor stopped before it was forwarded, answered in the vendor's error shape.
    ``key_id``: the key it was made with, once known (the refusal then gets an audit row)."""

    status = 403

    def __init__(self, reason: str, message: str, *, status: int | None = None, param: str | None = None,
                 key_id: str | None = None, endpoint: str | None = None, account: str | None = None):
        super().__init__(reason, message, status=status)
        self.param = param
        self.key_id = key_id
        self.endpoint = endpoint  # the operation refused, when the request said which
        self.account = account  # the account the request named, when that is why it was refused


class RequestRejected(Refused):
    """The request cannot be read unambiguously (an adapter, the path or the headers say why)."""

    status = 400


@dataclass(frozen=True)
class PresentedCredentials:
    """What the agent put in its auth header: the vault key and, for vendors whose
    auth carries one (Twilio), the account it claims."""

    vault_key: str | None
    account: str | None = None


@dataclass(frozen=True)
class UpstreamCredential:
    """The real vendor credential, decrypted, handed to the adapter only to build
    the upstream auth header."""

    secret: str
    account: str | None = None


@dataclass(frozen=True)
class PriceScope:
    """The vault key a call came with and the vendor account behind it: a price synced for the
    account, or set for the key (which wins), is used over the shipped table (vendors/pricebook.py)."""

    key_id: str | None = None
    account: str | None = None


@dataclass(frozen=True)
class ParsedRequest:
    """Facts about one request, everything the policy and the audit row need."""

    method: str
    path: str  # normalised concrete path on the upstream host, e.g. /v1/charges/ch_123
    endpoint: str  # template, e.g. "GET /v1/charges/{id}"
    params: Mapping[str, Any] = field(default_factory=dict)
    customer_id: str | None = None
    object_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    moves_money: bool = False
    idempotency_key: str | None = None
    # The header by which the vendor runs this call once however often it arrives with the same
    # value, answering repeats from its cache (Stripe: every POST; Resend: email sends); None:
    # nothing de-duplicates it. Where a policy asks, the core gives a money-moving call without
    # one a key derived from its run and content (proxy/idempotency.py). Must be forwarded.
    deduplicated_by: str | None = None
    account: str | None = None  # connected account / sub-account the call acts on
    summary: Mapping[str, Any] = field(default_factory=dict)  # redacted, for the audit row
    # Who a message goes to and comes from (Twilio numbers, Resend addresses), for scope rules.
    recipients: tuple[str, ...] = ()
    recipient_countries: tuple[str, ...] = ()  # ISO 3166 alpha-2, one per recipient when known
    senders: tuple[str, ...] = ()
    units: int = 1  # billable units the call creates: SMS segments, emails (each recipient)
    # Which of the adapter's ``hosts`` the call goes to (its route prefix); None: default_upstream.
    host: str | None = None
    # Every object id the call names (``object_id`` first): scope is checked on each (guarantee 9).
    objects: tuple[str, ...] = ()
    # Every customer the call names when it can name several (``customer_id`` first; a batch of
    # usage events each billing one): customer scope is checked on each, as on ``customer_id``.
    customers: tuple[str, ...] = ()
    # Lists of people the call mails as a whole (a Resend broadcast's segment), by id: the policy's
    # ``recipients.segments`` must name each; ``audience_size`` is how many people they hold, once a
    # price read told (``after_lookup``), for ``max_recipients``; None: not known.
    segments: tuple[str, ...] = ()
    audience_size: int | None = None
    # Where the call takes instructions Tollgate cannot read, which may reach anyone (a URL's host
    # that answers with the call's script; "application:<id>" for a vendor-side application):
    # under recipient rules on countries or numbers, each must be named by recipients.twiml_urls.
    instruction_sources: tuple[str, ...] = ()
    # Why the adapter cannot price the call before it is sent although it names an amount (its
    # currency has no USD rate): the core puts it in the cost_unknown refusal.
    unpriced: str | None = None
    # What would price it (a command, a table to edit), for that refusal; None: the core's default advice.
    unpriced_fix: str | None = None
    # Whose own prices apply (vendors/pricebook.py): set by the core from the authenticated key,
    # never by the adapter, which reads it when it looks a price up.
    price_scope: PriceScope = PriceScope()


@dataclass(frozen=True)
class RecordedObject:
    """An object a key created (recorded by the core at settle, looked up for later calls)."""

    object_id: str
    kind: str  # the vendor's object type: customer, charge, payment_intent, message, email...
    customer_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Operation:
    """One operation an adapter knows, as a policy names it (``POST /v1/charges/{id}/capture``;
    another host's with its route prefix), for the warnings ``tollgate policy validate`` gives."""

    method: str
    path: str
    kind: str  # moves_money | reaches_people | buys | reads | configures | issues_credentials | other
    # How its cost is known before it is sent: "free" (it costs nothing), "request" (the call says),
    # "lookup" (the call says, or the object it acts on does), "after" (only the answer says: refused
    # as cost_unknown unless the policy lists it in endpoints.priced_after), "set" (at prices the
    # operator sets, ``settable_prices``: cost_unknown, as "after", while one it needs is not set).
    priced: str


@dataclass(frozen=True)
class Lookup:
    """A read whose answer prices a call: the object the call acts on, fetched by the core with
    the key's credential before the gate (a GET the vendor does not bill); or, later, what tells
    whether an uncertain call happened (``outcome_lookup``). ``path`` is on the host ``host`` names
    (one of the adapter's ``hosts`` by its route prefix; None: the vendor's main host), where the core
    reads it on that host's configured upstream base; ``headers`` are the ones that choose the account
    it is read in."""

    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: str = ""  # the query string, encoded (without the "?")
    # A price list may live on a host of its own (Twilio's Pricing API): the read goes there.
    host: str | None = None


@dataclass(frozen=True)
class LookedUp:
    """The vendor's answer to a ``Lookup``; ``status`` 0 when it could not be asked."""

    status: int
    body: bytes = b""
    elapsed_ms: float = 0.0


@dataclass(frozen=True)
class ParsedResponse:
    """Facts read from the vendor's answer."""

    cost_usd: Decimal | None  # None: the response does not say (cost_source 'estimated' or 'none')
    currency: str | None = None
    amount_minor: int | None = None
    object_id: str | None = None
    customer_id: str | None = None
    vendor_request_id: str | None = None
    # The vendor answered from its idempotency cache: nothing happened again, nothing to count.
    replayed: bool = False
    # The answer does not say whether the call happened (a vendor 5xx on a call that moves money or
    # reaches people): the core keeps its estimate counted, as for a timeout, until reconciliation
    # asks the vendor (``outcome_lookup``). ``cost_usd`` is then not read.
    uncertain: bool = False
    created: RecordedObject | None = None  # an object this call created, for record-level scope
    # Every customer the answer names (the object's, or each listed object's): an answer that
    # reveals one outside the key's scope is withheld (DESIGN.md guarantee 9).
    revealed_customers: tuple[str, ...] = ()
    # An object an earlier call of the same key created whose cost this answer says will never be
    # billed (a scheduled email cancelled): the core reprices that call's row to 0, so every cap
    # it was counted in gets its cost back. Only a row still priced as an estimate can be.
    releases: str | None = None
    # The credentials the answer hands out (a new API key's secret, read where the catalogue says):
    # the core withholds the answer, unless the key's policy names the endpoint in
    # ``credentials.hand_out``, and never writes these values anywhere.
    credentials: tuple[str, ...] = ()
    # ``cost_usd`` is a conversion at a reference rate, and the vendor will say what the call really
    # settled at (a Stripe charge in EUR, later settled in USD): the core records it as an estimate
    # (cost_source 'estimated'), which ``reconcile`` replaces and the audit chain leaves open meanwhile.
    settles_later: bool = False


@dataclass(frozen=True)
class FinalPrice:
    """What a later fetch of an object says about its price (vendors that price after the fact)."""

    object_id: str | None
    status: str | None  # the vendor's status of the object (queued, sent, delivered, failed...)
    cost_usd: Decimal | None  # the vendor's price in USD; 0 for objects that will never be billed
    final: bool  # True: replace the estimate with cost_usd; False: ask again later


@dataclass(frozen=True)
class UncertainCall:
    """A forwarded call whose outcome nobody knows (the vendor timed out or answered 5xx), as its
    audit row recorded it, for an adapter to say how the vendor could tell what became of it."""

    method: str
    path: str  # on the vendor's main host, as forwarded
    endpoint: str | None
    account: str | None  # the connected account / sub-account it acted on
    idempotency_key: str | None
    vendor_request_id: str | None  # the vendor's id for this call, when it answered at all
    # The vendor's request ids of the key's other calls with the same idempotency key (an SDK's
    # retries): what they did is on their own rows, not this one's.
    others: tuple[str, ...]
    sent_at: int  # Unix seconds
    age_s: float  # how long ago it was sent


@dataclass(frozen=True)
class Outcome:
    """What a read says about an ``UncertainCall``."""

    happened: bool | None  # None: this answer does not tell (ask again later, or read ``next_page``)
    cost_usd: Decimal | None = None  # when it happened: what it moved; None: the estimate stands
    object_id: str | None = None  # the object it created or acted on, when the answer names it
    next_page: str | None = None  # the cursor of the read's next page, to pass to ``outcome_lookup``


@dataclass(frozen=True)
class VendorError:
    """A refusal to be rendered in the vendor's own error shape."""

    status: int
    reason: str  # stable code, also the vendor error `code`
    message: str
    kind: str = "policy"  # policy | auth | invalid_request | unavailable | not_found
    param: str | None = None
    retryable: bool = False
    request_id: str | None = None  # Tollgate's id for the request, for the vendor's request-id header
    approval_id: str | None = None  # set when the call is held for an operator's approval


@dataclass(frozen=True)
class RenderedResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Quickstart:
    """How a newcomer makes a first key for this vendor (``tollgate serve`` prints it)."""

    secret_env: str  # the environment variable the example reads the vendor secret from
    secret_example: str  # what such a secret looks like, e.g. "sk_test_..."
    policy_file: str  # an example policy under policy-schemas/examples/


@dataclass(frozen=True)
class ListedPrice:
    """One price read from a vendor's own price list (``PriceSync.read_prices``), in the list's currency."""

    kind: str  # what it prices, as the adapter's estimate looks it up: "sms", "voice", "number"...
    country: str  # ISO 3166 alpha-2, upper case
    price: Decimal
    currency: str  # lower case
    detail: str = ""  # a finer key the adapter uses (a number type); "" for none


@dataclass(frozen=True)
class SettablePrice:
    """A price an operator sets because no API of the vendor's tells it (``tollgate prices set VENDOR
    KIND USD``): a plan's rate per email, a contract's price per verification. An adapter lists them
    in ``settable_prices`` (optional, found with ``getattr``); the first is the one set when no kind
    is named."""

    kind: str  # as stored in vendor_prices.kind and looked up by the estimate: "email", "verify:sms"
    unit: str  # what one unit is: "email (each To, Cc and Bcc recipient)", "verification sent"
    description: str  # what the price covers, and where an operator reads theirs


class PriceSync(Protocol):
    """How to read a vendor's own price list with a key's credential (``tollgate prices sync``). An
    adapter that has one sets ``price_sync``; the core finds it with ``getattr``, so adapters without
    one (and plugins written before it) need not name it. Pure like the adapter: the core makes the
    reads (``Lookup`` on one of the adapter's ``hosts``), in order, and stores what ``read_prices`` gives."""

    feeds: tuple[str, ...]  # the price lists, by name ("messaging", "voice", "numbers")

    def countries_lookup(self, feed: str, page: str | None) -> Lookup:
        """The read that lists the countries ``feed`` has, from ``page`` (a previous answer's next page) on."""

    def read_countries(self, feed: str, answer: LookedUp) -> tuple[tuple[str, ...], str | None]:
        """The countries one page lists, and the next page (None: the last); raise ValueError when it is no list."""

    def price_lookup(self, feed: str, country: str) -> Lookup:
        """The read of one country's prices in ``feed``."""

    def read_prices(self, feed: str, country: str, answer: LookedUp) -> tuple[ListedPrice, ...]:
        """The prices the answer gives; () when the list has none for the country (Twilio's 404)."""


@runtime_checkable
class ToolSource(Protocol):
    """An adapter's operations as MCP tools, and the request a tool call becomes, which then goes down
    the one request path (vendors/tools.py). Optional, as ``price_sync`` is: not part of VendorAdapter,
    so a plugin without it still is one; the core finds it with ``getattr`` and offers it no tools."""

    def tools(self) -> Sequence[Tool]: ...

    def tool_request(self, tool: Tool, arguments: Mapping[str, Any], vault_key: str, account: str | None
                     ) -> ToolRequest: ...


@runtime_checkable
class VendorAdapter(Protocol):
    """One vendor. Built-ins live in vendors/ and are listed in vendors/registry.py; others plug
    in through the ``tollgate.vendors`` entry-point group (docs/vendors.md)."""

    name: str  # the route prefix (/<name>/...), the audit table's vendor column, the policy's vendor
    label: str  # how the console and the CLI name it
    colour: str  # its colour in the console's charts (CSS)
    default_upstream: str  # e.g. "https://api.stripe.com"; TOLLGATE_UPSTREAM_<NAME> overrides it
    # The vendor's other API hosts, by the route prefix that reaches them (/<name>/<prefix>/...):
    # each a default base URL that TOLLGATE_UPSTREAM_<NAME>_<PREFIX> overrides. parse_request
    # sees the prefix in the path and names the host in ParsedRequest.host; the upstream is
    # always taken from here or the configuration, never from the request.
    hosts: Mapping[str, str]
    # Request headers the vendor's SDKs send that are safe and useful to pass upstream.
    forward_request_headers: frozenset[str]
    # Response headers worth passing back to the agent.
    forward_response_headers: frozenset[str]
    # Request headers that decide what a call does or acts on (a connected account, an API
    # version): two copies of one are refused, and an approval covers their values.
    decision_headers: frozenset[str]
    # Regular expressions of the vendor's credentials, masked wherever Tollgate writes text. Each
    # must match only text with an underscore in it (proxy/redact.py skips text without one).
    secret_patterns: tuple[str, ...]
    # True when the answer does not carry the final price and ``reconcile`` reads it later.
    prices_later: bool
    # The header by which the vendor de-duplicates a repeated POST (None: it has none that
    # Tollgate uses). The core adds one to a POST that lacks it, so that the call can be named
    # later when its outcome is uncertain (``outcome_lookup``).
    idempotency_header: str | None
    # True when the upstream credential needs an account id besides the secret (Twilio's Account SID).
    requires_account: bool
    quickstart: Quickstart | None

    def presented_credentials(self, headers: Mapping[str, str]) -> PresentedCredentials: ...

    def operations(self) -> Iterable[Operation]:
        """Every operation the adapter knows (its catalogue), for policy warnings."""

    def parse_request(
        self, method: str, path: str, query: bytes, headers: Mapping[str, str], body: bytes
    ) -> ParsedRequest:
        """Raise RequestRejected for anything ambiguous or malformed."""

    def price_lookup(self, request: ParsedRequest, referenced: RecordedObject | None) -> Lookup | None:
        """The read that would price the call when neither the request nor ``referenced`` does (a
        full refund of a charge the key did not create); None when no read is needed or none tells."""

    def after_lookup(self, request: ParsedRequest, looked_up: LookedUp) -> tuple[ParsedRequest, Lookup | None]:
        """What the answer to a price read says about the call (the sender, segment and size of the
        broadcast it sends, which the policy then checks), and the next read when one answer leads
        to another (a broadcast names its segment; a segment's contacts come a page at a time). The
        core follows at most ``proxy.lookups.MAX_READS`` of them; most adapters return ``(request, None)``."""

    def estimate_usd(
        self, request: ParsedRequest, referenced: RecordedObject | None = None, looked_up: LookedUp | None = None
    ) -> Decimal | None:
        """Predicted cost in USD before the call leaves (0 for calls that cost nothing).

        ``referenced`` is the recorded object the request acts on (``request.object_id``), when
        the key created it; ``looked_up`` the answer to ``price_lookup``. None: the call may move
        money or reach people and what it costs cannot be known before it is sent; the core then
        refuses it (``cost_unknown``) unless the key's policy names the endpoint in
        ``endpoints.priced_after`` (DESIGN.md guarantee 8).
        """

    def parse_response(
        self, request: ParsedRequest, status: int, headers: Mapping[str, str], body: bytes
    ) -> ParsedResponse: ...

    def upstream_auth_headers(self, credential: UpstreamCredential) -> dict[str, str]: ...

    def render_error(self, error: VendorError) -> RenderedResponse: ...

    def reconcile_path(self, account: str | None, object_id: str, endpoint: str | None = None) -> str | None:
        """Where to fetch the final price later of ``object_id``, for a call of ``endpoint`` (its
        template, as the audit row holds it); None for vendors that price at once, or an object whose
        price is not the call's. The core asks with the object the row names, and on None asks again
        with the object the call created, if it created another (a Stripe refund's row names the
        charge it refunds; its price is the refund's)."""

    def reconcile(self, status: int, body: bytes) -> FinalPrice:
        """Read the final price from the answer to a ``reconcile_path`` fetch."""

    def outcome_lookup(self, call: UncertainCall, page: str | None) -> Lookup | None:
        """The read (a GET the vendor does not bill) that would tell whether ``call`` happened, from
        ``page`` (a previous ``Outcome.next_page``) on; None when nothing can tell: the estimate stands."""

    def outcome(self, call: UncertainCall, answer: LookedUp) -> Outcome:
        """Read the answer to an ``outcome_lookup``. ``happened=False`` only when the vendor's own
        record says the call did nothing (never from a missing or failed read)."""
