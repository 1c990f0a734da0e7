"""The page-view reader (service/store/pipelined.py) against real Redis servers: values in
order across concurrent batches, the database index, a password, and failures that surface as
redis-py errors and heal on the next call."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import pytest
import redis
from redis import exceptions as redis_errors

from service.store.pipelined import PipelinedReader, pack
from tests.inprocess import free_port


def _reader(url: str, **kw) -> PipelinedReader:
    client = redis.asyncio.Redis.from_url(url)
    pool = client.connection_pool
    assert PipelinedReader.supports(pool)
    return PipelinedReader.for_pool(pool, timeout_s=kw.pop("timeout_s", 2.0))


def test_pack_is_the_redis_protocol():
    assert pack("MGET", "a", "bé") == b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$3\r\nb\xc3\xa9\r\n"


async def test_concurrent_batches_get_their_own_values_in_order(redis_url, redis_prefix):
    sync = redis.Redis.from_url(redis_url)
    keys = [f"{redis_prefix}:pipelined:{k}" for k in range(300)]
    sync.mset({key: f"value-{k}".encode() for k, key in enumerate(keys[:200])})
    reader = _reader(redis_url)
    try:
        batches = [[keys[k:k + 3] for k in range(start, start + 60, 3)]
                   for start in range(0, 240, 60)]
        answers = await asyncio.gather(*(reader.mget_many(b) for b in batches))
    finally:
        await reader.close()
        sync.delete(*keys[:200])
    for batch, answer in zip(batches, answers):
        assert len(answer) == len(batch)
        for key_list, values in zip(batch, answer):
            expected = [f"value-{keys.index(k)}".encode() if keys.index(k) < 200 else None
                        for k in key_list]
            assert values == expected


async def test_reads_the_database_the_url_names(redis_url, redis_prefix):
    other = redis_url.rsplit("/", 1)[0] + "/7"
    key = f"{redis_prefix}:pipelined:db"
    sync7 = redis.Redis.from_url(other)
    sync7.set(key, b"in db 7")
    reader7, reader_default = _reader(other), _reader(redis_url)
    try:
        assert await reader7.mget_many([[key]]) == [[b"in db 7"]]
        assert await reader_default.mget_many([[key]]) == [[None]]
    finally:
        await reader7.close()
        await reader_default.close()
        sync7.delete(key)


@pytest.fixture
def password_redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is needed to start a server with a password")
    port, password = free_port(), uuid.uuid4().hex
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path),
                             "--requirepass", password],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield port, password
    finally:
        proc.kill()
        proc.wait()


async def test_a_password_is_sent_and_a_wrong_one_is_a_connection_error(password_redis):
    port, password = password_redis
    redis.Redis(port=port, password=password).set("k", b"v")
    good = _reader(f"redis://:{password}@127.0.0.1:{port}/0")
    bad = _reader(f"redis://:wrong@127.0.0.1:{port}/0")
    try:
        assert await good.mget_many([["k"]]) == [[b"v"]]
        with pytest.raises(redis_errors.ConnectionError, match="set-up"):
            await bad.mget_many([["k"]])
    finally:
        await good.close()
        await bad.close()


async def test_a_silent_server_times_out_and_the_next_call_reconnects(redis_url, redis_prefix):
    """A server that accepts and never answers: a redis-py TimeoutError within the timeout;
    once a real server is there, the same reader answers again."""
    silent_port = free_port()
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader, writer):
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", silent_port)
    reader = PipelinedReader(host="127.0.0.1", port=silent_port, timeout_s=0.2)
    try:
        with pytest.raises(redis_errors.TimeoutError):
            await reader.mget_many([["a"]])
    finally:
        server.close()
        for writer in accepted:
            writer.close()
    real_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    reader.port = real_port  # the same reader, now pointed at a server that answers
    try:
        assert await reader.mget_many([[f"{redis_prefix}:absent"]]) == [[None]]
    finally:
        await reader.close()


async def test_nobody_listening_is_a_connection_error():
    reader = PipelinedReader(host="127.0.0.1", port=free_port(), timeout_s=1.0)
    with pytest.raises(redis_errors.ConnectionError, match="cannot connect"):
        await reader.mget_many([["a"]])
