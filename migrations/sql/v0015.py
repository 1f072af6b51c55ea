"""Approvals name what a call acts on, as migration 0015 reshaped them.

An approval used to hold only the parameters that would be sent, so an operator approved a
payout without seeing the connected account it would pay out of, and the agent's retry with
another ``Stripe-Account`` passed on it (issue 17, item 1). From 0015 the ``request`` column
holds ``{"params": ..., "account": ..., "headers": ...}`` (proxy/approvals.py writes it; the
gate functions copy it through unchanged, so none of them is replaced), and the fingerprint
covers the account and the decision headers. Every row filed before 0015 keeps their parameters
under ``params`` with no account recorded: nothing about them was known.
"""

UPGRADE = [
    """UPDATE approvals SET request = jsonb_build_object('params', coalesce(request, '{}'::jsonb),
                                                   'account', NULL, 'headers', '{}'::jsonb)""",
]
DOWNGRADE = [
    "UPDATE approvals SET request = request->'params'",
]
