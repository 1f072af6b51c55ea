"""The operation a request names, read from its method and path alone, for a refusal raised
before (or while) the adapter parsed it: ``wrong_vendor``, ``account_mismatch``, a sender the
adapter refused. Every blocked row then names its endpoint whenever the method and path
identify one (DESIGN.md's audit row; issues 16 and 23), not only the rows of parsed calls.

The templates are the adapters' own (``VendorAdapter.operations()``, the catalogues they
read), matched as policies match them: literal segments before placeholders.
"""

from __future__ import annotations

from vendors.base import VendorAdapter
from vendors.endpoints import Endpoint, EndpointTable


class OperationNames:
    def __init__(self, adapters: list[VendorAdapter]):
        self._tables = {a.name: EndpointTable(Endpoint(o.method, o.path, None) for o in a.operations())
                        for a in adapters}

    def of(self, vendor: str, method: str, path: str | None) -> str | None:
        """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` for a path the vendor's
        operations know; None for one they do not (or no readable path)."""
        table = self._tables.get(vendor)
        if table is None or path is None:
            return None
        endpoint, _, _ = table.match(method, path)
        return endpoint.name if endpoint is not None else None
