"""The schema, declared once with SQLAlchemy Core.

Migrations in migrations/versions create exactly this (a test compares them), and the
admin API and CLI query through these objects. ``audit_events`` column names are a
public interface: users write SQL against them, so they are never renamed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

USD = Numeric(20, 6)  # six decimals: Twilio prices a segment in fractions of a cent
NOW = text("now()")

policies = Table(
    "policies",
    metadata,
    Column("id", Text, primary_key=True),
    Column("vendor", Text, nullable=False),
    Column("name", Text),
    Column("current_version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Index("policies_created", "created_at", "id"),  # the policies list, newest first (proxy/pages.py)
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("policy_id", Text, ForeignKey("policies.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("policy_id", "version"),
)

upstream_credentials = Table(
    "upstream_credentials",
    metadata,
    Column("id", Text, primary_key=True),
    Column("vendor", Text, nullable=False),
    Column("account", Text),  # e.g. Twilio account SID; never secret
    Column("secret_ciphertext", LargeBinary, nullable=False),  # AES-256-GCM, see proxy/secretbox.py
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("rotated_at", DateTime(timezone=True)),
)

vault_keys = Table(
    "vault_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("vendor", Text, nullable=False),
    Column("label", Text),
    Column("secret_hash", LargeBinary, nullable=False),  # sha256 of the key's secret part
    Column("credential_id", Text, ForeignKey("upstream_credentials.id"), nullable=False),
    Column("policy_id", Text, ForeignKey("policies.id"), nullable=False),
    Column("status", Text, nullable=False, server_default=text("'active'")),  # active | revoked
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("revoked_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),
    # How its token is marked (proxy/vaultkeys.py): 'tagged' since migration 0016; 'crc32' for keys
    # issued before, and for any writer that does not know the column (the default).
    Column("checksum", Text, nullable=False, server_default=text("'crc32'")),
    # A delegated key (proxy/delegation.py, migration 0021): who minted it, how deep in the chain
    # (0: a key an operator made), and the one run it is bound to (its rows record that run id).
    Column("parent_key_id", Text, ForeignKey("vault_keys.id")),
    Column("depth", Integer, nullable=False, server_default=text("0")),
    Column("agent_run_id", Text),
    Index("vault_keys_created", "created_at", "id"),  # the keys list, newest first (proxy/pages.py)
    Index("vault_keys_policy", "policy_id"),  # keys per policy
    Index("vault_keys_parent", "parent_key_id"),  # a key's children: revocation reaches the subtree
)

# The installation's own secrets, sealed under the master key (proxy/serversecrets.py).
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

# Refusals of callers who never authenticated (an unknown or forged key, a wrong secret), counted
# per minute and source (proxy/refusals.py): the first of each also writes an audit row, the
# rest only add to ``refusals`` here, so a flood of made-up keys costs one row a minute.
auth_refusals = Table(
    "auth_refusals",
    metadata,
    Column("minute", DateTime(timezone=True), nullable=False),
    Column("source", Text, nullable=False),  # client address (IPv6 by /64), or 'other' past the per-minute cap
    Column("vendor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("refusals", BigInteger, nullable=False),
    PrimaryKeyConstraint("minute", "source", "vendor", "reason"),
)

# One row per key and window bucket ("day:2026-11-24", "run:<run id>", "total"), shared by
# every cap on that window: spend and request counts both live here.
budget_counters = Table(
    "budget_counters",
    metadata,
    Column("key_id", Text, nullable=False),
    Column("bucket", Text, nullable=False),
    Column("spent_usd", USD, nullable=False, server_default=text("0")),
    Column("reserved_usd", USD, nullable=False, server_default=text("0")),
    Column("requests", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("key_id", "bucket"),
)

# An allowed call's predicted cost, held against its buckets until the call settles.
reservations = Table(
    "reservations",
    metadata,
    Column("audit_id", BigInteger, primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("usd", USD, nullable=False),
    Column("buckets", ARRAY(Text), nullable=False),
    # Whose counter row each bucket is (aligned with buckets): a delegated key's call also reserves
    # against its ancestors' rows. NULL (rows before migration 0021): all are the key's own.
    Column("owners", ARRAY(Text)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("reconciled_at", DateTime(timezone=True)),  # charged at its estimate after it expired
    Index("reservations_expires_at", "expires_at"),
)

# Objects a key created (customers, charges, payment intents, messages, emails): the ground
# truth for "only records created through this key" and for pricing calls that name no amount.
key_objects = Table(
    "key_objects",
    metadata,
    Column("key_id", Text, nullable=False),
    Column("object_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("customer_id", Text),
    Column("amount_minor", BigInteger),
    Column("currency", Text),
    Column("audit_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("key_id", "object_id"),
)

# A request held for a human: bound to its key and the request's fingerprint (method, path,
# canonical parameters), so only the identical retry passes, and only once.
approvals = Table(
    "approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("key_id", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),  # pending | approved | denied | used (expiry is by expires_at)
    Column("reason", Text, nullable=False),
    Column("message", Text),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("endpoint", Text),
    Column("agent_run_id", Text),
    Column("predicted_usd", USD),
    # What would be sent (no credentials): {"params": {...}, "account": ..., "headers": {...}},
    # the account and the decision headers being what the call acts on (proxy/approvals.py).
    Column("request", JSONB),
    Column("audit_id", BigInteger),  # the row that asked
    Column("used_audit_id", BigInteger),  # the row that passed with it
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", Text),
    Column("note", Text),
    Index("approvals_lookup", "key_id", "fingerprint", "created_at"),
    Index("approvals_status", "status", "created_at"),
    Index("approvals_created", "created_at", "id"),  # the approvals list, newest first
)

audit_events = Table(
    "audit_events",
    metadata,
    # Partitioned by month of ts (migration 0007), so the primary key must include ts.
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("ts", DateTime(timezone=True), primary_key=True, nullable=False, server_default=NOW),
    Column("request_id", Text, nullable=False),  # Tollgate's id for the request, also in logs
    Column("agent_run_id", Text),
    Column("key_id", Text),
    Column("vendor", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("endpoint", Text),
    Column("customer_id", Text),
    Column("object_id", Text),
    Column("vendor_account", Text),  # Stripe-Account / Stripe-Context, Twilio account SID
    Column("decision", Text, nullable=False),  # allowed | blocked | shadow_blocked | approval_required | error
    Column("reason", Text),  # stable code
    Column("message", Text),  # the sentence the agent was shown
    Column("state", Text, nullable=False),  # pending (forwarding) | final | reconciled
    Column("predicted_usd", USD),
    Column("cost_usd", USD),
    Column("cost_source", Text),  # parsed | estimated | none
    Column("currency", Text),
    Column("amount_minor", BigInteger),
    Column("upstream_status", Integer),
    Column("upstream_request_id", Text),
    Column("idempotency_key", Text),
    Column("latency_ms", Numeric(12, 3)),
    Column("policy_id", Text),
    Column("policy_version", Integer),
    Column("request_summary", JSONB),
    Column("finalized_at", DateTime(timezone=True)),
    Column("cost_reconciled_at", DateTime(timezone=True)),  # when the vendor's later price replaced the estimate
    Index("audit_events_run", "agent_run_id", "ts"),
    Index("audit_events_key_ts", "key_id", "ts"),
    Index("audit_events_ts", "ts"),
    Index("audit_events_estimated", "vendor", "ts", postgresql_where=text("cost_source = 'estimated'")),
    postgresql_partition_by="RANGE (ts)",
)


# Tamper evidence (proxy/audit/chain.py): each sealed audit row's hash covers its canonical content
# and the previous row's hash; heads of the chain are signed with Ed25519.
audit_chain = Table(
    "audit_chain",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("audit_id", BigInteger, nullable=False, unique=True),
    Column("prev_hash", LargeBinary, nullable=False),
    Column("row_hash", LargeBinary, nullable=False),
    Column("sealed_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("archived_in", Text),  # the audit_archives partition its row went to
)

# A month's partition detached for archiving: its chain entries' digest, signed, so verify
# tells archived rows from deleted ones.
audit_archives = Table(
    "audit_archives",
    metadata,
    Column("partition_name", Text, primary_key=True),
    Column("range_from", DateTime(timezone=True)),  # NULL: from the beginning
    Column("range_to", DateTime(timezone=True), nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("first_seq", BigInteger),
    Column("last_seq", BigInteger),
    Column("digest", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("public_key_id", Text, nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

audit_chain_heads = Table(
    "audit_chain_heads",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("head_hash", LargeBinary, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("public_key_id", Text, nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

audit_chain_skipped = Table(
    "audit_chain_skipped",
    metadata,
    Column("audit_id", BigInteger, primary_key=True, autoincrement=False),
)

audit_chain_cursor = Table(
    "audit_chain_cursor",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("scanned_to", BigInteger, nullable=False),
)

# A signed-in console browser (proxy/console/session.py): the SHA-256 of the random id its
# cookie carries, never the id. Signing out deletes the row, which ends every copy of the cookie.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", LargeBinary, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


# Exchange rates from a published reference (proxy/fxrates.py), one row per currency, reference
# day and source: the history stays, so the rate an audit row names can be checked against it.
fx_rates = Table(
    "fx_rates",
    metadata,
    Column("currency", Text, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("usd_per_unit", Numeric, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("currency", "as_of", "source"),
    CheckConstraint("usd_per_unit > 0"),
)


# The first of a run of identical money-moving or message-sending calls on a key, within its
# policy's ``duplicates`` window (proxy/duplicates.py): the copies are refused naming it.
duplicate_claims = Table(
    "duplicate_claims",
    metadata,
    Column("key_id", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("idempotency_key", Text),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("key_id", "fingerprint"),
    Index("duplicate_claims_expires", "expires_at"),
)


# Vendor prices synced from the vendor's own price list or set by an operator (proxy/vendorprices.py),
# per vendor account or vault key; the history stays, as fx_rates keeps it.
vendor_prices = Table(
    "vendor_prices",
    metadata,
    Column("vendor", Text, nullable=False),
    Column("scope", Text, nullable=False),  # account | key
    Column("scope_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # sms | voice | number | email | ...
    Column("country", Text, nullable=False, server_default=text("''")),
    Column("detail", Text, nullable=False, server_default=text("''")),  # a number type; '' for none
    Column("price", Numeric, nullable=False),
    Column("currency", Text, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("vendor", "scope", "scope_id", "kind", "country", "detail", "as_of", "source"),
    CheckConstraint("scope IN ('account', 'key')"),
    CheckConstraint("price >= 0"),
)

# One row per periodic job that one process of many runs (proxy/leases.py).
background_leases = Table(
    "background_leases",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

# One row per agent run that made a call carrying its run id or was stopped by hand
# (proxy/halts.py): its calls since it began or was last resumed, and whether it is halted,
# by which condition (max_calls, max_refusals, consecutive_errors, operator) and key.
run_state = Table(
    "run_state",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("calls", BigInteger, nullable=False, server_default=text("0")),
    Column("first_call_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("last_call_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("halted_at", DateTime(timezone=True)),
    Column("halted_by", Text),
    Column("halted_detail", Text),
    Column("halted_key_id", Text),
    Column("resumed_at", DateTime(timezone=True)),
    CheckConstraint("(halted_at IS NULL) = (halted_by IS NULL)"),
    Index("run_state_halted", "halted_at", postgresql_where=text("halted_at IS NOT NULL")),
)

# Alerts (proxy/alerts, migration 0023): webhook subscriptions, the outbox the causing transaction
# writes, and every delivery and attempt.
alert_subscriptions = Table(
    "alert_subscriptions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),  # 'refusal', 'refusal:cap_exceeded', 'cap_threshold', ...
    Column("format", Text, nullable=False, server_default=text("'json'")),  # json | slack
    # The whole URL (a Slack webhook's path is its token) and the signing secret, as JSON, sealed;
    # ``url`` above is only scheme, host and first path segment, for lists.
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("removed_at", DateTime(timezone=True)),
    CheckConstraint("format IN ('json', 'slack')", name="alert_subscriptions_format"),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("detail", Text),  # what 'kind:detail' subscriptions match: a refusal's reason, a threshold
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("event_id", BigInteger, ForeignKey("alert_outbox.id"), nullable=False),
    Column("subscription_id", Text, ForeignKey("alert_subscriptions.id"), nullable=False),
    # pending | delivered | failed (gave up) | cancelled (its subscription was removed)
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("subscription_id", "event_id", name="alert_deliveries_once"),
    Index("alert_deliveries_queue", "subscription_id", "event_id", postgresql_where=text("status = 'pending'")),
    Index("alert_deliveries_created", "created_at", "id"),
)

alert_attempts = Table(
    "alert_attempts",
    metadata,
    Column("delivery_id", BigInteger, ForeignKey("alert_deliveries.id"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("status_code", Integer),  # the receiver's answer; NULL when none came (error says why)
    Column("error", Text),
    Column("duration_ms", Numeric(12, 3)),
    PrimaryKeyConstraint("delivery_id", "attempt"),
)

# A cap threshold crossed once per key, cap, counter bucket and threshold (proxy/alerts/thresholds.py).
alert_thresholds = Table(
    "alert_thresholds",
    metadata,
    Column("key_id", Text, nullable=False),
    Column("cap", Text, nullable=False),  # 'day:usd:200.00', 'minute:requests:10'
    Column("bucket", Text, nullable=False),
    Column("threshold", Integer, nullable=False),  # percent
    Column("crossed_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("event_id", BigInteger),  # NULL when no subscription wanted it then
    PrimaryKeyConstraint("key_id", "cap", "bucket", "threshold"),
)

# Where the threshold scan of budget_counters got to (one row).
alert_scan = Table(
    "alert_scan",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("counters_to", DateTime(timezone=True), nullable=False),
)
