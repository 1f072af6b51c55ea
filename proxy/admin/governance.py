"""Admin routes for the policy engine: policies and their versions, spend against caps,
approvals, runs (their story, stopping and resuming them). Same conventions as
proxy/admin/api.py (which mounts these)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response

from proxy import approvals, halts, keys, pages, runs, spend
from proxy.admin.http import field, json_body, json_response
from proxy.admin.routes import Operation
from proxy.errors import InvalidInput
from proxy.policy import store


class GovernanceRoutes:
    def __init__(self, engine: AsyncEngine, vendors: Iterable[str]) -> None:
        self._engine = engine
        self._vendors = tuple(vendors)  # the vendor names served, for policy validation

    def operations(self) -> list[Operation]:
        return [
            ("/admin/v1/policies", "POST", self.create_policy),
            ("/admin/v1/policies", "GET", self.list_policies),
            ("/admin/v1/policies/{policy_id}", "GET", self.show_policy),
            ("/admin/v1/policies/{policy_id}/versions", "POST", self.add_version),
            ("/admin/v1/keys/{key_id}/policy", "POST", self.attach_policy),
            ("/admin/v1/keys/{key_id}/spend", "GET", self.key_spend),
            ("/admin/v1/approvals", "GET", self.list_approvals),
            ("/admin/v1/approvals/{approval_id}", "GET", self.show_approval),
            ("/admin/v1/approvals/{approval_id}/approve", "POST", self.approve),
            ("/admin/v1/approvals/{approval_id}/deny", "POST", self.deny),
            ("/admin/v1/runs/{run_id}", "GET", self.run_story),
            ("/admin/v1/runs/{run_id}/stop", "POST", self.stop_run),
            ("/admin/v1/runs/{run_id}/resume", "POST", self.resume_run),
            ("/admin/v1/halted-runs", "GET", self.halted_runs),
            ("/admin/v1/spend/daily", "GET", self.daily_spend),
            ("/admin/v1/counts", "GET", self.counts),
        ]

    async def create_policy(self, request: Request) -> Response:
        body = await json_body(request)
        async with self._engine.begin() as conn:
            created = await store.create_policy(conn, field(body, "document", dict, required=True),
                                                field(body, "name", str), self._vendors)
        return json_response(created, 201)

    async def list_policies(self, request: Request) -> Response:
        params = request.query_params
        async with self._engine.connect() as conn:
            page = await store.list_policies(conn, pages.limit_of(params.get("limit")), params.get("cursor"))
        return json_response(page.body())

    async def show_policy(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response(await store.show_policy(conn, request.path_params["policy_id"]))

    async def add_version(self, request: Request) -> Response:
        body = await json_body(request)
        async with self._engine.begin() as conn:
            updated = await store.add_version(conn, request.path_params["policy_id"],
                                              field(body, "document", dict, required=True), self._vendors)
        return json_response(updated, 201)

    async def attach_policy(self, request: Request) -> Response:
        body = await json_body(request)
        key_id = request.path_params["key_id"]
        async with self._engine.begin() as conn:
            await store.attach(conn, key_id, field(body, "policy_id", str, required=True))
            return json_response(await keys.show_key(conn, key_id))

    async def key_spend(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response(await spend.key_spend(conn, request.path_params["key_id"],
                                                       request.query_params.get("agent_run_id")))

    async def list_approvals(self, request: Request) -> Response:
        params = request.query_params
        async with self._engine.connect() as conn:
            page = await approvals.list_approvals(conn, params.get("status"), params.get("key_id"),
                                                  pages.limit_of(params.get("limit")), params.get("cursor"))
        return json_response(page.body())

    async def show_approval(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response(await approvals.show_approval(conn, request.path_params["approval_id"]))

    async def run_story(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response(await runs.run_story(conn, request.path_params["run_id"]))

    async def stop_run(self, request: Request) -> Response:
        body = await json_body(request, allow_empty=True)
        async with self._engine.begin() as conn:
            return json_response(await halts.stop(conn, request.path_params["run_id"], field(body, "reason", str)))

    async def resume_run(self, request: Request) -> Response:
        async with self._engine.begin() as conn:
            return json_response(await halts.resume(conn, request.path_params["run_id"]))

    async def halted_runs(self, request: Request) -> Response:
        params = request.query_params
        async with self._engine.connect() as conn:
            page = await halts.list_halted(conn, pages.limit_of(params.get("limit")), params.get("cursor"))
        return json_response(page.body())

    async def daily_spend(self, request: Request) -> Response:
        raw = request.query_params.get("days", "30")
        if not raw.isdigit():
            raise InvalidInput("invalid_days", "days must be a whole number.")
        async with self._engine.connect() as conn:
            return json_response(await spend.daily_by_vendor(conn, int(raw)))

    async def counts(self, request: Request) -> Response:
        async with self._engine.connect() as conn:
            return json_response({"keys": await keys.count_keys(conn),
                                  "approvals": {"pending": await approvals.count_pending(conn)}})

    async def approve(self, request: Request) -> Response:
        return await self._decide(request, approve=True)

    async def deny(self, request: Request) -> Response:
        return await self._decide(request, approve=False)

    async def _decide(self, request: Request, approve: bool) -> Response:
        body = await json_body(request, allow_empty=True)
        async with self._engine.begin() as conn:
            decided = await approvals.decide(conn, request.path_params["approval_id"], approve,
                                             field(body, "by", str), field(body, "note", str))
        return json_response(decided)
