"""Every flag has an environment twin; the flag wins over the environment."""

from __future__ import annotations

import pytest
from mtlsdemo.cli import build_parser
from mtlsdemo.commands.flags import resolve_lists


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
        "MTLSDEMO_IDENTITY_DIR",
        "MTLSDEMO_LEDGER_ADDR",
        "MTLSDEMO_ALLOW_ID",
        "MTLSDEMO_METRICS_LISTEN",
    ):
        assert twin in text


def _walk(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, (*path, name))
        elif action.option_strings and "[env MTLSDEMO_" in (action.help or ""):
            env = action.help.split("[env ", 1)[1].split("]", 1)[0]
            yield env, " ".join(path), action


def test_one_environment_twin_has_one_meaning_across_commands() -> None:
    """Compose and Kubernetes set one environment per container, and every command
    sees it: a twin shared by two commands must take the same kind of value (a
    HOST:PORT for one and a route for another broke the compose sidecar once)."""
    seen: dict[str, tuple[str, object, str]] = {}
    for env, where, action in _walk(build_parser()):
        kind = (getattr(action.type, "__name__", str(action.type)), action.choices)
        if env in seen:
            assert seen[env][:2] == kind, (env, seen[env][2], where, kind)
        else:
            seen[env] = (*kind, where)
    assert len(seen) > 40


def test_a_bad_twin_only_stops_the_command_that_owns_it(monkeypatch, capsys) -> None:
    from mtlsdemo.cli import main

    monkeypatch.setenv("MTLSDEMO_RPS", "abc")  # loadgen's
    assert main(["break", "--list"]) == 0  # another command is not bothered
    assert main(["loadgen", "--duration", "1"]) == 2
    assert "MTLSDEMO_RPS='abc'" in capsys.readouterr().err


def test_a_renamed_flag_keeps_its_old_name_and_twin_for_a_release(monkeypatch) -> None:
    args = parse(["client", "--tls-dir", "old/cli", "balance", "a"])
    assert args.identity_dir == "old/cli"
    monkeypatch.setenv("MTLSDEMO_TLS_DIR", "from/env")
    assert parse(["client", "balance", "a"]).identity_dir == "from/env"
    monkeypatch.setenv("MTLSDEMO_IDENTITY_DIR", "new/env")  # the new twin wins
    assert parse(["client", "balance", "a"]).identity_dir == "new/env"
