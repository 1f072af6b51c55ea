"""Vendor prices synced from the vendor or set by an operator, and the lease of background jobs,
as migration 0024 created them.

``vendor_prices`` is to vendor list prices what ``fx_rates`` is to exchange rates: one row per
vendor, scope (a vendor ``account``, such as a Twilio Account SID, or a vault ``key``), kind of
price (``sms``, ``voice``, ``number``, ``email``), country and detail (a number type; '' for
none), day and source. ``tollgate prices sync --vendor twilio`` writes the account's own prices
read from Twilio's Pricing API; ``tollgate prices set resend`` writes a per-key or per-account
rate. The history stays, so the price an audit row's ``request_summary.price_source`` names can
be checked later; each process uses the newest row per price and the shipped table for the rest.
Prices are in the currency the source gave (Twilio's ``price_unit``), converted when used.

``background_leases``: one row per periodic job that one process of many should run (the daily
price sync): a process runs it only when it moved ``taken_at`` forward in one statement, so two
processes waking at once cannot both run it.
"""

CREATE = [
    """
CREATE TABLE vendor_prices (
  vendor text NOT NULL,
  scope text NOT NULL CHECK (scope IN ('account', 'key')),
  scope_id text NOT NULL,
  kind text NOT NULL,
  country text NOT NULL DEFAULT '',
  detail text NOT NULL DEFAULT '',
  price numeric NOT NULL CHECK (price >= 0),
  currency text NOT NULL,
  as_of date NOT NULL,
  source text NOT NULL,
  fetched_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (vendor, scope, scope_id, kind, country, detail, as_of, source)
)
""",
    """
CREATE TABLE background_leases (
  name text PRIMARY KEY,
  holder text NOT NULL,
  taken_at timestamptz NOT NULL DEFAULT now()
)
""",
]

DROP = ["DROP TABLE background_leases", "DROP TABLE vendor_prices"]
