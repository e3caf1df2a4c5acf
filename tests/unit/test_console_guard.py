"""The console obeys only the page it served (console/guard.py): a foreign Host
(DNS rebinding), a foreign Origin, a form-encodable body or a missing token is
refused, and the page's own request passes."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from mtlsdemo.console.guard import TOKEN_HEADER, Guard, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("LocalHost", "localhost"),
        ("::1", "::1"),
    ],
)
def test_host_names_are_parsed_with_and_without_ports(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    "header",
    ["127.0.0.1:47080@evil.example", "[127.0.0.1]evil.example", "[::1]evil", "127.0.0.1:80x",
     "evil.example/127.0.0.1", "127.0.0.1 evil", "[127.0.0.1]:8080", ":8080", ""],
)  # fmt: skip
def test_a_host_that_only_starts_like_loopback_is_refused(header: str) -> None:
    assert host_name(header) == ""
    assert not guard().host_allowed(header)


def guard() -> Guard:
    return Guard("127.0.0.1", allowed_hosts=["console.example.test"])


def request(method: str = "POST", **headers: str):
    base = {"Host": "127.0.0.1:8080"}
    return make_mocked_request(method, "/api/break/revoked", headers={**base, **headers})


def page_headers(g: Guard) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Origin": "http://127.0.0.1:8080",
        TOKEN_HEADER: g.token,
    }


def test_the_pages_own_post_passes() -> None:
    g = guard()
    assert g.refusal(request(**page_headers(g))) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"Origin": "http://evil.example"}, "another website"),
        ({"Content-Type": "text/plain"}, "application/json"),
        ({TOKEN_HEADER: "guess"}, "wrong X-Mtlsdemo-Token"),
        ({"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}, "DNS rebinding"),
    ],
)
def test_a_post_from_anywhere_else_is_refused(change: dict[str, str], why: str) -> None:
    g = guard()
    refusal = g.refusal(request(**{**page_headers(g), **change}))
    assert refusal is not None and why in refusal


def test_curl_without_the_token_is_refused_and_with_it_passes() -> None:
    g = guard()
    assert "token" in (g.refusal(request(**{"Content-Type": "application/json"})) or "").lower()
    ok = request(**{"Content-Type": "application/json", TOKEN_HEADER: g.token})
    assert g.refusal(ok) is None  # no Origin (not a browser): the token is the proof


def test_reads_need_a_known_host_only() -> None:
    g = guard()
    for host in (
        "127.0.0.1:8080",
        "10.1.2.3:8080",
        "[::1]:8080",
        "localhost:8080",
        "console.example.test",
    ):
        assert g.refusal(request("GET", Host=host)) is None, host
    assert "DNS rebinding" in (g.refusal(request("GET", Host="attacker.example")) or "")


def test_each_start_has_its_own_token() -> None:
    assert Guard("127.0.0.1").token != Guard("127.0.0.1").token
    assert len(Guard("127.0.0.1").token) >= 40
