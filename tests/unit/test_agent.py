"""The Workload API agent without sockets: what it issues, when it renews, what it
keeps when the CA cannot issue, and how the workload's side reads what it is sent."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from mtlsdemo.agent.config import AgentConfig, AgentConfigError
from mtlsdemo.agent.rotation import JITTER, Rotation
from mtlsdemo.agent.server import Agent
from mtlsdemo.pki.errors import PkiError
from mtlsdemo.pki.material import IdentityMaterial
from mtlsdemo.pki.workload_api import WorkloadApiSource, pem_files, socket_of, split_der
from mtlsdemo.trust import TrustStore
from support.identities import GATEWAY_ID, LEDGER_ID

# after the session CA was made (its validity starts then), whole seconds like X.509 times
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def _agent(
    certs: Path, tmp_path: Path, ttl: dt.timedelta, jitter: float = 0.0
) -> tuple[Agent, Clock]:
    clock = Clock()
    cfg = AgentConfig(certs_dir=certs, socket_dir=tmp_path / "s", ttl=ttl)
    agent = Agent(cfg, clock=clock, jitter=lambda: jitter)
    agent.issue_all()
    return agent, clock


@pytest.fixture
def certs(pki_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    shutil.copytree(pki_dir, out)
    return out


def test_an_svid_names_the_workload_lives_the_ttl_and_verifies_against_the_bundle(
    certs, tmp_path
) -> None:
    agent, _ = _agent(certs, tmp_path, dt.timedelta(minutes=2))
    svid = agent.rotations["ledger"].svid
    assert svid.spiffe_id == LEDGER_ID and agent.rotations["gateway"].svid.spiffe_id == GATEWAY_ID
    assert svid.not_after - T0 <= dt.timedelta(minutes=2)
    assert svid.not_after - T0 > dt.timedelta(minutes=2) - dt.timedelta(seconds=1)
    ca = x509.load_pem_x509_certificate((certs / "ca" / "ca.crt").read_bytes())
    assert svid.bundle == (ca,)
    # what the Workload API sends, read back as the workload reads it: one checked identity
    msg = agent.x509_response("ledger").svids[0]
    crt, key, bundle = pem_files(msg.x509_svid, msg.x509_svid_key, msg.bundle, "test")
    m = IdentityMaterial.from_bytes(crt, key, bundle, Path("test"), T0)
    assert m.problems == () and m.identity == LEDGER_ID
    TrustStore(m.cas).verify_certificates(m.chain, "client", T0)


def test_renewal_is_due_at_half_life_minus_up_to_a_tenth_of_jitter(certs, tmp_path) -> None:
    ttl = dt.timedelta(hours=24)
    for jitter, expected in ((0.0, ttl / 2), (0.999, ttl / 2 - ttl * JITTER * 0.999)):
        agent, _ = _agent(certs, tmp_path, ttl, jitter)
        assert agent.rotations["gateway"].renew_at - T0 == expected


def test_the_agent_renews_when_due_and_pushes_each_change_once(certs, tmp_path) -> None:
    agent, clock = _agent(certs, tmp_path, dt.timedelta(minutes=2))
    first = agent.rotations["gateway"].svid.leaf.serial_number
    clock.now = T0 + dt.timedelta(seconds=59)
    assert agent.tick() is False and agent.version == 0  # not due yet: nothing pushed
    clock.now = T0 + dt.timedelta(seconds=60)
    assert agent.tick() is True and agent.version == 1
    r = agent.rotations["gateway"]
    assert r.svid.leaf.serial_number != first and r.renewals == 1
    assert [h.serial for h in r.history] == [f"{first:x}", f"{r.svid.leaf.serial_number:x}"]
    assert r.renew_at == clock.now + dt.timedelta(minutes=1)


def test_a_ca_that_cannot_issue_keeps_the_svid_in_hand_and_retries_soon(certs, tmp_path) -> None:
    agent, clock = _agent(certs, tmp_path, dt.timedelta(minutes=10))
    held = agent.rotations["ledger"].svid
    (certs / "ca" / "ca.key").rename(certs / "ca" / "ca.key.aside")
    clock.now = T0 + dt.timedelta(minutes=5)
    assert agent.tick() is False
    r = agent.rotations["ledger"]
    assert r.svid is held and r.failures == 1 and "ca.key" in (r.last_error or "")
    assert r.renew_at == clock.now + dt.timedelta(seconds=30)  # a tenth of it, at most 30 s
    assert agent.status()["workloads"]["ledger"]["remaining_seconds"] == pytest.approx(300, abs=2)
    (certs / "ca" / "ca.key.aside").rename(certs / "ca" / "ca.key")
    clock.now = r.renew_at
    assert agent.tick() is True and r.last_error is None and r.svid is not held


def test_a_rollovers_bundle_is_pushed_at_once_without_a_renewal(certs, tmp_path) -> None:
    from mtlsdemo.pki.bootstrap import BootstrapRequest
    from mtlsdemo.pki.lifecycle import rotate_ca
    from mtlsdemo.pki.stores import FileStore

    agent, _ = _agent(certs, tmp_path, dt.timedelta(hours=1))
    serial = agent.rotations["gateway"].svid.leaf.serial_number
    req = BootstrapRequest(out=certs, services=("gateway", "ledger", "cli"))
    rotate_ca(req, "prepare", FileStore(certs), T0)
    assert agent.tick() is True
    svid = agent.rotations["gateway"].svid
    assert len(svid.bundle) == 2 and svid.leaf.serial_number == serial


def test_retry_bounds() -> None:
    r = Rotation.__new__(Rotation)
    fake = type("S", (), {})()
    fake.lifetime = dt.timedelta(hours=24)
    r.svid = fake  # type: ignore[assignment]
    r.failures = 0
    r.failed("x", T0)
    assert r.renew_at == T0 + dt.timedelta(seconds=30)
    fake.lifetime = dt.timedelta(seconds=10)
    r.failed("x", T0)
    assert r.renew_at == T0 + dt.timedelta(seconds=1)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x31\x00", "not concatenated DER"),
        (b"\x30\x85\x00\x00\x00\x00\x00", "cannot be read"),
        (b"\x30\x05\x00", "cut short"),
    ],
)
def test_bad_der_in_a_push_is_refused_by_name(data: bytes, why: str) -> None:
    with pytest.raises(PkiError, match=why):
        split_der(data, "x509_svid")


def test_concatenated_der_splits_back_into_the_certificates(certs, tmp_path) -> None:
    agent, _ = _agent(certs, tmp_path, dt.timedelta(hours=1))
    svid = dataclasses.replace(agent.rotations["gateway"].svid)
    parts = split_der(svid.chain_der() + svid.bundle_der(), "both")
    assert [x509.load_der_x509_certificate(p) for p in parts] == [*svid.chain, *svid.bundle]


def test_agent_settings_are_refused_with_the_flag_named(tmp_path) -> None:
    base = AgentConfig(certs_dir=tmp_path, socket_dir=tmp_path)
    with pytest.raises(AgentConfigError, match="--svid-ttl: 5s is shorter"):
        dataclasses.replace(base, ttl=dt.timedelta(seconds=5)).validate()
    with pytest.raises(AgentConfigError, match="a workload is named twice"):
        dataclasses.replace(base, workloads=("a", "a")).validate()
    with pytest.raises(AgentConfigError, match="at most 107"):
        dataclasses.replace(base, socket_dir=tmp_path / ("d" * 120)).validate()


def test_the_workload_side_names_a_socket_nobody_serves(tmp_path) -> None:
    assert socket_of("unix:///run/a.sock") == Path("/run/a.sock")
    assert socket_of("unix:/run/a.sock") == Path("/run/a.sock")
    with pytest.raises(PkiError, match="not a Unix socket path"):
        socket_of("127.0.0.1:8081")
    with pytest.raises(PkiError, match=r"no SVID from unix:.*within 0.3s.*mtlsdemo agent"):
        WorkloadApiSource(f"unix://{tmp_path}/none.sock", first_wait=0.3)


def test_a_switched_ca_renews_every_svid_from_it_at_once(certs, tmp_path) -> None:
    from mtlsdemo.pki.bootstrap import BootstrapRequest
    from mtlsdemo.pki.lifecycle import rotate_ca
    from mtlsdemo.pki.stores import FileStore
    from mtlsdemo.trust.verify import issued_by

    agent, _ = _agent(certs, tmp_path, dt.timedelta(hours=24))
    req = BootstrapRequest(out=certs, services=("gateway", "ledger", "cli"))
    rotate_ca(req, "prepare", FileStore(certs), T0)
    agent.tick()
    old = {w: r.svid.leaf.serial_number for w, r in agent.rotations.items()}
    rotate_ca(req, "switch", FileStore(certs), T0)
    assert agent.tick() is True
    new_ca = x509.load_pem_x509_certificate((certs / "ca" / "ca.crt").read_bytes())
    for w, r in agent.rotations.items():
        assert r.svid.leaf.serial_number != old[w] and issued_by(r.svid.leaf, new_ca)
        assert len(r.svid.bundle) == 2  # the previous CA still trusted until finish


def test_a_federated_bundle_key_is_read_as_the_spec_or_a_bare_name_gives_it() -> None:
    from mtlsdemo.pki.workload_api import trust_domain_name

    assert trust_domain_name("spiffe://B.example") == "b.example"
    assert trust_domain_name("b.example") == "b.example"
    assert trust_domain_name("spiffe://b.example/") == "b.example"


def test_the_agents_admin_serves_exactly_what_its_reference_lists() -> None:
    import re

    from mtlsdemo.agent.runner import _admin_app

    text = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "admin.md").read_text()
    part = text.split("## The Workload API agent's admin port", 1)[1].split("\n## ", 1)[0]
    documented = {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", part, re.MULTILINE)}
    app = _admin_app(None)  # type: ignore[arg-type]  # the routes only, never called
    assert {r.canonical for r in app.router.resources()} == documented
