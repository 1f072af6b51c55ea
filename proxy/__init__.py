"""Tollgate's proxy core: routing, vault keys, policy, budget gate, audit, admin API, CLI."""

__version__ = "0.1.0"
