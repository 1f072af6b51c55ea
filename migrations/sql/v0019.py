"""Exchange rates from a published reference, as migration 0019 created them.

``tollgate prices sync --fx`` stores one row per currency per reference day and source, so the
history stays: an audit row's ``request_summary.fx`` names the rate, its day and its source, and
this table lets anyone check it against what was fetched (a few dozen rows a day is nothing to
keep). The proxy uses the newest row per currency; the shipped table covers the rest.
"""

CREATE = [
    """
CREATE TABLE fx_rates (
  currency text NOT NULL,
  as_of date NOT NULL,
  source text NOT NULL,
  usd_per_unit numeric NOT NULL CHECK (usd_per_unit > 0),
  fetched_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (currency, as_of, source)
)
""",
]

DROP = ["DROP TABLE fx_rates"]
