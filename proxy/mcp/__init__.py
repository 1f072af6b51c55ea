"""Tollgate as an MCP server: the vendors' operations as tools, governed as the vendor routes are.

One endpoint, ``/mcp`` (streamable HTTP, the official ``mcp`` SDK's transport), for every
vendor: the vault key in ``Authorization: Bearer`` names its vendor, so an agent with three keys
connects three times to one URL. What the modules do:

- ``offer``: the tools a key is offered: its vendor's catalogue (``adapter.tools()``, the
  vendor's own descriptions: vendors/tools.py) filtered by the key's policy (allowed or held for
  approval, nothing that issues credentials, nothing refused as unpriced whatever it is sent with);
- ``results``: a pipeline answer as a tool result: a refusal is ``isError`` with the audit row's
  own words, and a call held for approval says how to ask again;
- ``server``: the transport, the bearer check and ``tools/call``, which builds the request the
  vendor's SDK would have sent (``adapter.tool_request``) and hands it to ``ProxyHandler.serve``:
  the same pipeline as every vendor route, so no rule is implemented twice.

Stateless on purpose: every MCP request carries the key and the run id, so any worker or replica
answers any request and no session outlives a revocation (the next call is judged afresh).
"""
