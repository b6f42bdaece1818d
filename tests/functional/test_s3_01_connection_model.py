"""SPEC §3.1 Connection model: requests run on worker threads; one slow request does not hold up
others.
"""

from __future__ import annotations

import threading
import time

from tests.functional.serving import Running, body_of


def test_a_sleeping_request_does_not_block_another(running: Running) -> None:
    slow = threading.Thread(target=running.exchange, args=(b"GET /sleep?1.5 HTTP/1.0\r\n\r\n",))
    slow.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert running.exchange(b"GET /echo HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 OK")
    assert time.monotonic() - started < 1.0
    slow.join()


def test_fifty_concurrent_clients(running: Running) -> None:
    results: list[bytes] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        body = b"client-%d" % n
        raw = b"POST /echo HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        response = running.exchange(raw)
        with lock:
            results.append(body_of(response))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == sorted(b"client-%d" % n for n in range(50))
