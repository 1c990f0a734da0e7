"""Page-view reads on one connection: MGETs packed here, replies parsed by hiredis.

A page view reads one customer's keys with one ``MGET``; the profile store coalesces the MGETs
of the requests in flight into one pipeline (``service.store.redis._ReadCoalescer``). Through
redis-py's asyncio connection each reply costs a timeout context, a stream read and a response
callback: about 90,000 instructions per page view, a fifth of its whole cost
(benchmarks/RESULTS.md). :class:`PipelinedReader` does only this one job: it writes a batch
of packed MGETs on a connection of its own and hands each batch its replies as hiredis parses
them, with one timeout per batch.

Contract: :meth:`PipelinedReader.mget_many` returns, for each key list, the values (``bytes``
or ``None``) in order, or raises a redis-py ``ConnectionError``, ``TimeoutError`` or
``ResponseError`` (so callers handle it like any Redis failure). After any failure the
connection is closed (replies of other batches on it fail too) and the next call opens a new
one. It serves plain TCP servers; the store keeps redis-py for TLS, Unix sockets and clusters
(:meth:`PipelinedReader.supports`).
"""

from __future__ import annotations

import asyncio
from collections import deque

import hiredis
from redis.asyncio.connection import Connection
from redis import exceptions as redis_errors

_Batch = tuple[int, list, asyncio.Future]  # replies expected, replies so far, waiter
FEED_BYTES = 4096


def pack(*args: bytes | str) -> bytes:
    """One command in the Redis protocol (RESP); ``str`` arguments are encoded as UTF-8, as
    redis-py encodes them."""
    encoded = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in encoded)


class _Replies(asyncio.Protocol):
    """Feeds what the server sends to hiredis and completes the batches in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.batches: deque[_Batch] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # Fed a slice at a time: hiredis moves the unread rest of its buffer to the front
        # after each reply of over 1 KiB, so a 64 KiB read of 2.5 KiB profiles fed whole
        # costs a quadratic amount of copying (a quarter of the read's instructions).
        size = len(data)
        for start in range(0, size, FEED_BYTES):
            self.reader.feed(data, start, min(FEED_BYTES, size - start))
            self._complete()

    def _complete(self) -> None:
        batches, reader = self.batches, self.reader
        while batches:
            expected, replies, waiter = batches[0]
            reply = reader.gets()
            if reply is False:
                return
            replies.append(reply)
            if len(replies) == expected:
                batches.popleft()
                if not waiter.done():
                    waiter.set_result(replies)

    def close(self) -> None:
        """Stop using this connection now (its batches fail when the close completes)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        error = redis_errors.ConnectionError(f"redis connection lost ({exc or 'closed'})")
        while self.batches:
            waiter = self.batches.popleft()[2]
            if not waiter.done():
                waiter.set_exception(error)

    def send(self, payload: bytes, expected: int) -> asyncio.Future:
        waiter = asyncio.get_running_loop().create_future()
        self.batches.append((expected, [], waiter))
        self.transport.write(payload)
        return waiter


class PipelinedReader:
    """MGETs for page views on one connection; see the module docstring."""

    def __init__(self, *, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout_s: float):
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self._replies: _Replies | None = None
        self._connecting: asyncio.Future | None = None

    @staticmethod
    def supports(pool) -> bool:
        """Whether a redis-py connection pool's server is one this reader can talk to."""
        return pool.connection_class is Connection and "host" in pool.connection_kwargs

    @classmethod
    def for_pool(cls, pool, *, timeout_s: float) -> PipelinedReader:
        kw = pool.connection_kwargs
        return cls(host=kw["host"], port=kw.get("port", 6379), db=kw.get("db", 0) or 0,
                   username=kw.get("username"), password=kw.get("password"),
                   timeout_s=timeout_s)

    async def _connection(self) -> _Replies:
        replies = self._replies
        if replies is not None and not replies.lost:
            return replies
        if self._connecting is None:  # one connect at a time; concurrent callers share it
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Replies:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, replies = await loop.create_connection(_Replies, self.host, self.port)
                setup = []
                if self.password:
                    setup.append(pack("AUTH", *filter(None, (self.username, self.password))))
                if self.db:
                    setup.append(pack("SELECT", str(self.db)))
                if setup:
                    answers = await replies.send(b"".join(setup), len(setup))
                    errors = [a for a in answers if isinstance(a, Exception)]
                    if errors:
                        replies.close()
                        raise redis_errors.ConnectionError(
                            f"redis refused the connection set-up: {errors[0]}")
        except TimeoutError as exc:  # asyncio's, the built-in one
            raise redis_errors.TimeoutError(
                f"connecting to redis took over {self.timeout_s} s") from exc
        except OSError as exc:
            raise redis_errors.ConnectionError(
                f"cannot connect to redis at {self.host}:{self.port}: {exc}") from exc
        self._replies = replies
        return replies

    async def mget_many(self, key_lists: list[list[str]]) -> list[list[bytes | None]]:
        replies = await self._connection()
        waiter = replies.send(b"".join(pack("MGET", *keys) for keys in key_lists),
                              len(key_lists))
        try:
            async with asyncio.timeout(self.timeout_s):
                answers = await waiter
        except TimeoutError as exc:  # asyncio's, the built-in one
            replies.close()  # its other replies would come out of step
            raise redis_errors.TimeoutError(
                f"redis did not answer within {self.timeout_s} s") from exc
        for answer in answers:
            if isinstance(answer, Exception):
                raise redis_errors.ResponseError(str(answer))
        return answers

    async def close(self) -> None:
        if self._replies is not None:
            self._replies.close()
        self._replies = None
