"""Every subcommand's --help says what it does and shows two examples, and every
example is a command line the real parser accepts (issue 27)."""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex

import pytest
from mtlsdemo.cli import build_parser
from mtlsdemo.commands.examples import EXAMPLES


def subcommands(p: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{path} {name}".strip()
                out[full] = child
                out |= subcommands(child, full)
    return out


ALL = subcommands(build_parser())


def test_every_subcommand_has_examples_and_nothing_else_does() -> None:
    assert set(EXAMPLES) == set(ALL)


@pytest.mark.parametrize("path", sorted(ALL))
def test_help_has_a_description_and_two_examples(path: str) -> None:
    text = ALL[path].format_help()
    assert ALL[path].description and ALL[path].description in text
    shown = text.split("examples:\n", 1)[1].splitlines()
    assert len([line for line in shown if line.startswith("  mtlsdemo ")]) >= 2


@pytest.mark.parametrize("example", sorted({e for es in EXAMPLES.values() for e in es}))
def test_every_example_parses(example: str) -> None:
    argv = shlex.split(example)
    assert argv[0] == "mtlsdemo"
    with contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"{example}: {err.getvalue().strip()}")
