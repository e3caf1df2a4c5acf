"""Shared fixtures: certificate directories, free ports, tier requirements.

A tier that needs a missing tool skips with the reason, unless the tool is named
in MTLSDEMO_REQUIRE (comma-separated, e.g. "docker,prometheus"): then it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings
from mtlsdemo.addresses import (
    free_port,  # noqa: F401  (the tests import it from here)
)
from mtlsdemo.pki.bootstrap import BootstrapRequest, bootstrap

pytest_plugins = ["support.docker"]  # the containers tier's fixtures (docker, image)

# Property tests are part of the gate, so they are deterministic by default: the
# same examples every run (derived from each test's name), no example database
# carried between runs. MTLSDEMO_HYPOTHESIS=explore searches at random instead
# (with MTLSDEMO_FUZZ_EXAMPLES=20000, say) to hunt for new counterexamples.
settings.register_profile("gate", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("MTLSDEMO_HYPOTHESIS", "gate"))

REQUIRED = {t.strip() for t in os.environ.get("MTLSDEMO_REQUIRE", "").split(",") if t.strip()}


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA with gateway, ledger and cli identities, shared by a test session."""
    out = tmp_path_factory.mktemp("pki")
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger", "cli")))
    return out


@pytest.fixture(scope="session")
def other_pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, unrelated CA issuing the same names: must never be trusted."""
    out = tmp_path_factory.mktemp("other-pki")
    bootstrap(BootstrapRequest(out=out, services=("gateway", "ledger", "cli")))
    return out
