"""`break --list` says which of the four steps each scenario breaks, from the reason the
scenario ends in and the core's step of that reason."""

from __future__ import annotations

import contextlib
import io

from mtlsdemo.breaking.catalog import CATALOG, REASONS, SCENARIOS, step_of
from mtlsdemo.cli import main


def test_every_scenario_has_its_reason_and_step() -> None:
    assert set(REASONS) == set(SCENARIOS)
    assert step_of("foreign-ca") == "step 2 — certificate verification"
    assert step_of("tamper") == "step 4 — encrypted data"
    assert step_of("no-common-suite") == step_of("slow-handshake") == "step 1 — hello"
    assert step_of("authz-deny-method") == "after step 4 — authorization"


def test_each_scenario_is_one_record_whose_run_exists() -> None:
    """Name, summary, reason and run in one record: no parallel dict to forget."""
    assert len({s.name for s in CATALOG}) == len(CATALOG)
    for s in CATALOG:
        assert callable(s.runner()), s.run


def test_break_list_names_the_step() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["break", "--list"]) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == len(SCENARIOS)
    for line in lines:
        name = line.split()[0]
        assert step_of(name) in line and SCENARIOS[name] in line
