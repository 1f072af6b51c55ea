"""Alerts that are not lost: webhook subscriptions, an outbox, signed deliveries with retries.

Why it is built this way:

- **Written with its cause.** An event enters ``alert_outbox`` (and ``alert_deliveries``, one
  row per subscription that wants it) in the transaction that caused it, through the SQL
  function ``tollgate_alert_emit`` (migrations/sql/v0023.py). A refusal, a held approval and a
  revocation reach it by triggers, so the gate and settle functions are not touched and no
  caller can forget; a rolled-back cause leaves no alert, a committed one cannot lose it. The
  refusal trigger's WHEN clause means an allowed call never runs it, and the function inserts
  nothing when no subscription wants the event. Other code calls ``events.emit(conn, ...)``
  (or the SQL function) in its own transaction.
- **Cap thresholds from the counters.** Spend moves in the gate's and settle's hot SQL, which
  stay as they are; ``budget_counters`` (spent + reserved per key and bucket) is the durable
  truth. The delivery loop reads the counters changed since its cursor (``alert_scan``) against
  each key's current caps, and records a crossing in ``alert_thresholds``, whose primary key
  (key, cap, bucket, threshold) makes each one fire once however often it is seen (thresholds.py).
- **Delivered by whoever holds the lease.** Every process offers to deliver; a Postgres
  advisory transaction lock (the audit sealer's mechanism, proxy/audit/chain.py) lets one at a
  time do it. Each tick claims the oldest pending deliveries of each subscription, sends them
  and marks them in the same transaction, so two processes never send one event and a
  subscription's events go out in outbox order; a failure is retried with exponential back-off
  and later events wait behind it (delivery.py).
- **Signed.** ``Tollgate-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` under a
  per-subscription secret shown once (signing.py; docs/alerts.md has the receiver's check).
"""
