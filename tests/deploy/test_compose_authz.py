"""The compose project's authorization policy (deploy/compose/authz/policy.yaml): the
same policy as Kubernetes' ConfigMap, mounted (as a directory, so an editor's rename
is seen) into exactly the containers that name it, in every compose mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.deploy
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"


def _target(volume: str) -> str:
    """SOURCE:TARGET[:MODE]; the source may hold ":-" (a variable's default)."""
    head, _, last = volume.rpartition(":")
    return head.rpartition(":")[2] if last in ("ro", "rw") else last


def merged(*overrides: str) -> dict:
    """The services as compose merges them for these mounts and env (by target/key)."""
    services: dict[str, dict] = {}
    for name in ("docker-compose.yml", *overrides):
        for svc, spec in yaml.safe_load((COMPOSE / name).read_text())["services"].items():
            into = services.setdefault(svc, {"environment": {}, "volumes": {}})
            into["environment"].update(spec.get("environment") or {})
            for v in spec.get("volumes") or []:
                target = v["target"] if isinstance(v, dict) else _target(v)
                into["volumes"][target] = v
    return services


def test_the_compose_policy_is_the_configmap_s() -> None:
    cm = yaml.safe_load((ROOT / "deploy/k8s/base/authz-policy.yaml").read_text())
    mine = (COMPOSE / "authz" / "policy.yaml").read_text()
    assert yaml.safe_load(mine) == yaml.safe_load(cm["data"]["policy.yaml"])


@pytest.mark.parametrize("overrides", [(), ("post-quantum.yml",), ("workload-api.yml",)])
def test_each_enforcer_mounts_the_policy_directory(overrides: tuple[str, ...]) -> None:
    services = merged(*overrides)
    enforcers = {
        s for s, spec in services.items() if "MTLSDEMO_AUTHZ_POLICY" in spec["environment"]
    }
    expected = {"ledger-sidecar", "gateway"}
    if overrides == ("post-quantum.yml",):
        expected.add("gateway-sidecar")  # it takes the callers; the gateway asks it who
        assert services["gateway"]["environment"]["MTLSDEMO_CALLER_FROM_SIDECAR"]
    assert enforcers == expected
    for svc in enforcers:
        assert services[svc]["environment"]["MTLSDEMO_AUTHZ_POLICY"] == "/authz/policy.yaml"
        assert services[svc]["volumes"]["/authz"] == "${MTLSDEMO_AUTHZ_DIR:-./authz}:/authz:ro"
