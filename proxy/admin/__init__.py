"""The admin API under /admin/v1: keys, policies, approvals, runs and spend over HTTP.

``api`` builds the Starlette routes, ``governance`` the policy-engine routes, ``routes`` mounts
each handler under its OpenAPI operation (``openapi``), and ``http`` holds the JSON plumbing.
"""
