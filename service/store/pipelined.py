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

With a :class:`~service.store.near_cache.NearCache`, the reader opens a second connection that
subscribes to Redis's invalidation channel, and turns on client tracking on its own connection
with that one as the target (``CLIENT TRACKING ON REDIRECT <id>``), before any read. The two are
one link: when either is lost or times out, both are closed and the cache is emptied and off
until the next call opens a new link. The invalidation connection only listens, so a link that
dies without a word (a NAT or firewall forgetting the flow: Redis drops the client, no FIN
reaches the worker) would go unnoticed and the cache would keep values Redis no longer tells it
about: the link sends ``PING`` on it every ``heartbeat_s`` (1 s) and is closed when the answer
has not come by the next one. A server that refuses tracking (an ACL without ``CLIENT`` or
pub/sub) is read without the cache, with one warning in the log.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque

import hiredis
from redis.asyncio.connection import Connection
from redis import exceptions as redis_errors

from service.store.near_cache import NearCache

log = logging.getLogger(__name__)
_Batch = tuple[int, list, asyncio.Future]  # replies expected, replies so far, waiter
FEED_BYTES = 4096
HEARTBEAT_S = 1.0  # PING on the invalidation connection; no answer by the next: link closed


def pack(*args: bytes | str) -> bytes:
    """One command in the Redis protocol (RESP); ``str`` arguments are encoded as UTF-8, as
    redis-py encodes them."""
    encoded = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in encoded)


_PING = pack("PING")


class SetupRefused(redis_errors.ConnectionError):
    """Redis answered a command of a new connection's set-up with an error."""

    def __init__(self, command: str, error: Exception):
        super().__init__(f"redis refused {command} in the connection set-up: {error}")
        self.command = command


class _Replies(asyncio.Protocol):
    """Feeds what the server sends to hiredis and completes the batches in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.batches: deque[_Batch] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.on_lost: list = []  # called once when the connection is lost

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
        callbacks, self.on_lost = self.on_lost, []
        for callback in callbacks:
            callback()

    def send(self, payload: bytes, expected: int) -> asyncio.Future:
        waiter = asyncio.get_running_loop().create_future()
        self.batches.append((expected, [], waiter))
        self.transport.write(payload)
        return waiter


class _Invalidations(_Replies):
    """The connection Redis sends invalidation messages to: after its set-up replies, every
    message names keys that changed (``None``: the database was flushed)."""

    def __init__(self, near: NearCache) -> None:
        super().__init__()
        self.near = near
        self.pongs = 0  # answers to the heartbeat's PINGs

    def _complete(self) -> None:
        super()._complete()
        if self.batches:
            return
        reader, near = self.reader, self.near
        while (message := reader.gets()) is not False:
            # RESP2 pub/sub: [b"message", b"__redis__:invalidate", [key, ...] or None], and
            # [b"pong", b""] for a PING
            if isinstance(message, list) and len(message) == 3 and message[0] == b"message":
                keys = message[2]
                if keys is None:
                    near.clear()
                else:
                    near.invalidate([key.decode() for key in keys])
            elif isinstance(message, list) and message and message[0] == b"pong":
                self.pongs += 1

    async def heartbeat(self, interval_s: float) -> None:
        """PING every ``interval_s``; close the connection (and so the link) when a PING has
        no answer by the time the next is due. Ends when the connection is lost."""
        while not self.lost:
            answered = self.pongs
            self.transport.write(_PING)
            await asyncio.sleep(interval_s)
            if not self.lost and self.pongs == answered:
                log.warning("redis invalidation connection silent for %.1f s: near cache "
                            "emptied, reconnecting", interval_s)
                self.close()


class PipelinedReader:
    """MGETs for page views on one connection; see the module docstring."""

    def __init__(self, *, host: str, port: int, db: int = 0, username: str | None = None,
                 password: str | None = None, timeout_s: float, near: NearCache | None = None,
                 heartbeat_s: float = HEARTBEAT_S):
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self.near = near
        self.heartbeat_s = heartbeat_s
        self._replies: _Replies | None = None
        self._invalidations: _Invalidations | None = None
        self._heartbeat: asyncio.Task | None = None
        self._connecting: asyncio.Future | None = None

    @staticmethod
    def supports(pool) -> bool:
        """Whether a redis-py connection pool's server is one this reader can talk to."""
        return pool.connection_class is Connection and "host" in pool.connection_kwargs

    @classmethod
    def for_pool(cls, pool, *, timeout_s: float, near: NearCache | None = None
                 ) -> PipelinedReader:
        kw = pool.connection_kwargs
        return cls(host=kw["host"], port=kw.get("port", 6379), db=kw.get("db", 0) or 0,
                   username=kw.get("username"), password=kw.get("password"),
                   timeout_s=timeout_s, near=near)

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

    async def _open(self, protocol: type[_Replies] | functools.partial,
                    commands: list[tuple[str, ...]]) -> tuple[_Replies, list]:
        """A connection of ``protocol`` that has answered ``commands`` without an error."""
        loop = asyncio.get_running_loop()
        _, replies = await loop.create_connection(protocol, self.host, self.port)
        if self.password:
            commands = [("AUTH", *filter(None, (self.username, self.password))), *commands]
        answers = []
        if commands:
            payload = b"".join(pack(*command) for command in commands)
            answers = await replies.send(payload, len(commands))
        for command, answer in zip(commands, answers):
            if isinstance(answer, Exception):
                replies.close()
                raise SetupRefused(command[0], answer)
        return replies, answers

    async def _connect(self) -> _Replies:
        try:
            return await self._link()
        except SetupRefused as exc:
            if self.near is None or exc.command not in ("CLIENT", "SUBSCRIBE"):
                raise
            # e.g. an ACL without CLIENT or pub/sub: serve without the near cache, not degraded
            log.warning("near cache off: %s; page views read redis every time", exc)
            self.near.enabled = False
            self.near = None
            return await self._link()

    async def _link(self) -> _Replies:
        """A new reading connection; with a near cache, its invalidation connection too."""
        near = self.near
        setup = [("SELECT", str(self.db))] if self.db else []
        invalidations = None
        try:
            async with asyncio.timeout(self.timeout_s):
                if near is not None:
                    invalidations, answers = await self._open(
                        functools.partial(_Invalidations, near),
                        [("CLIENT", "ID"), ("SUBSCRIBE", "__redis__:invalidate")])
                    setup.append(("CLIENT", "TRACKING", "ON", "REDIRECT", str(answers[-2])))
                replies, _ = await self._open(_Replies, setup)
        except TimeoutError as exc:  # asyncio's, the built-in one
            if invalidations is not None:
                invalidations.close()
            raise redis_errors.TimeoutError(
                f"connecting to redis took over {self.timeout_s} s") from exc
        except OSError as exc:
            if invalidations is not None:
                invalidations.close()
            raise redis_errors.ConnectionError(
                f"cannot connect to redis at {self.host}:{self.port}: {exc}") from exc
        except BaseException:
            if invalidations is not None:
                invalidations.close()
            raise
        self._replies, self._invalidations = replies, invalidations
        if invalidations is not None:
            def unlink() -> None:  # either connection lost: close both; empty the cache
                replies.close()
                invalidations.close()
                if self._invalidations is invalidations:  # still the current link
                    near.enabled = False
                    near.clear()

            replies.on_lost.append(unlink)
            invalidations.on_lost.append(unlink)
            if replies.lost or invalidations.lost:
                unlink()
                raise redis_errors.ConnectionError("redis closed a new connection")
            self._heartbeat = asyncio.ensure_future(invalidations.heartbeat(self.heartbeat_s))
            near.clear()
            near.enabled = True
        return replies

    async def mget_many(self, key_lists: list[list[str]]) -> list[list[bytes | None]]:
        replies = await self._connection()
        near = self.near
        epoch = 0
        if near is not None:
            for keys in key_lists:
                epoch = near.begin(keys)
        waiter = replies.send(b"".join(pack("MGET", *keys) for keys in key_lists),
                              len(key_lists))
        answers = None
        try:
            async with asyncio.timeout(self.timeout_s):
                answers = await waiter
        except TimeoutError as exc:  # asyncio's, the built-in one
            replies.close()  # its other replies would come out of step
            raise redis_errors.TimeoutError(
                f"redis did not answer within {self.timeout_s} s") from exc
        finally:
            if near is not None:
                failed = answers is None or any(isinstance(a, Exception) for a in answers)
                for i, keys in enumerate(key_lists):
                    near.fill(keys, None if failed else answers[i], epoch)
        for answer in answers:
            if isinstance(answer, Exception):
                raise redis_errors.ResponseError(str(answer))
        return answers

    async def close(self) -> None:
        if self.near is not None:
            self.near.enabled = False
            self.near.clear()
        for connection in (self._replies, self._invalidations):
            if connection is not None:
                connection.close()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        self._replies = self._invalidations = self._heartbeat = None
