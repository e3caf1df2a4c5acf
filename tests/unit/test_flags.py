"""Every flag has an environment twin; the flag wins over the environment."""

from __future__ import annotations

import pytest
from mtlsdemo.cli import build_parser
from mtlsdemo.flags import resolve_lists


def parse(argv: list[str]):
    return resolve_lists(build_parser().parse_args(argv))


def test_env_twin_sets_default_and_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLSDEMO_LEDGER_ADDR", "10.0.0.1:1")
    assert parse(["serve", "gateway"]).ledger_addr == "10.0.0.1:1"
    assert parse(["serve", "gateway", "--ledger-addr", "h:2"]).ledger_addr == "h:2"


def test_list_twin_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLSDEMO_ALLOW_ID", "spiffe://a/x, spiffe://a/y")
    assert parse(["serve", "ledger"]).allow_id == ["spiffe://a/x", "spiffe://a/y"]
    assert parse(["serve", "ledger", "--allow-id", "spiffe://a/z"]).allow_id == ["spiffe://a/z"]


def test_boolean_twin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse(["serve", "ledger"]).plaintext is False
    monkeypatch.setenv("MTLSDEMO_PLAINTEXT", "true")
    assert parse(["serve", "ledger"]).plaintext is True
    assert parse(["serve", "ledger", "--no-plaintext"]).plaintext is False


def test_help_names_each_twin(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "gateway", "--help"])
    text = capsys.readouterr().out
    for twin in (
        "MTLSDEMO_LISTEN",
        "MTLSDEMO_TLS_DIR",
        "MTLSDEMO_LEDGER_ADDR",
        "MTLSDEMO_ALLOW_ID",
        "MTLSDEMO_METRICS_LISTEN",
    ):
        assert twin in text
