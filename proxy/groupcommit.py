"""Group commit: concurrent callers' items go to the database together, one transaction each
batch, and every caller gets its own answer.

A lone call is a batch of one and goes at once; calls that arrive while ``lanes`` batches
are in flight wait and leave together in the next one. So under load a transaction (and
its commit, and its hot row locks) is paid once per batch, not once per call, and when idle
nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

# Runs one batch: an answer (or the exception to raise) for each item, in order. Raising
# fails every item of the batch with that exception.
RunBatch = Callable[[list[Item]], Awaitable[Sequence["Answer | BaseException"]]]


class GroupCommit(Generic[Item, Answer]):
    def __init__(self, run_batch: RunBatch[Item, Answer], max_batch: int, lanes: int):
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._lanes = lanes
        self._busy_lanes = 0
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._drains: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    async def submit(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._busy_lanes < self._lanes:
            self._busy_lanes += 1
            # A fresh context: the batch serves many requests, so it logs none's ids.
            drain = asyncio.create_task(self._drain(), context=contextvars.Context())
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch:]
                await self._send(batch)
        finally:
            self._busy_lanes -= 1

    async def _send(self, batch: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self._run_batch([item for item, _ in batch])
        except Exception as exc:  # handed to every caller of the batch; the drain goes on
            answers = [exc] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
