"""The sidecar's observer: failure log lines rate-limited per reason, with the
suppressed ones counted, on an injected clock."""

from __future__ import annotations

import logging

from mtlsdemo.sidecar.observer import RateLimitedLog


def test_one_line_per_key_per_interval_and_the_rest_counted(caplog) -> None:
    now = [0.0]
    limited = RateLimitedLog(interval=5.0, clock=lambda: now[0])
    key = ("handshake failures", "decode_error")
    with caplog.at_level(logging.WARNING, logger="mtlsdemo.sidecar.tunnel"):
        assert limited(key, logging.WARNING, "failed %d", 1)
        for i in range(2, 2001):  # a flood inside one interval
            now[0] += 0.001
            assert not limited(key, logging.WARNING, "failed %d", i)
        other = ("handshake failures", "unknown_ca")
        assert limited(other, logging.WARNING, "other reason")  # its own budget
        now[0] = 5.5
        assert limited(key, logging.WARNING, "failed %d", 2001)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "failed 1",
        "other reason",
        "failed 2001 (+1999 more handshake failures decode_error in the last 5s, not logged)",
    ]


def test_flush_reports_a_flood_that_stopped(caplog) -> None:
    now = [0.0]
    limited = RateLimitedLog(interval=5.0, clock=lambda: now[0])
    key = ("session failures", "decrypt_error")
    with caplog.at_level(logging.WARNING, logger="mtlsdemo.sidecar.tunnel"):
        limited(key, logging.WARNING, "first")
        for _ in range(7):
            limited(key, logging.WARNING, "again")
        limited.flush()  # interval not over: nothing yet
        now[0] = 6.0
        limited.flush()
        limited.flush()  # reported once
    assert [r.getMessage() for r in caplog.records] == [
        "first",
        "7 more session failures decrypt_error in the last 5s, not logged one by one",
    ]
