"""The pod runner's kubelet rules, checked against what the kubelet does (no Docker
needed): $(VAR) expansion, image name normalisation, the AtomicWriter layout and
SetVolumeOwnership's ownership and modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from kubelet import (
    ProjectedFile,
    atomic_write_volume,
    expand,
    merged_security,
    non_root_refusal,
    normalize_image,
    resolve_target_port,
    token_owner,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("spiffe://td/ns/$(POD_NAMESPACE)/sa/x", "spiffe://td/ns/mtlsdemo/sa/x"),
        ("$(UNDEFINED) stays", "$(UNDEFINED) stays"),
        ("$$(POD_NAMESPACE) is escaped", "$(POD_NAMESPACE) is escaped"),
        ("a $ alone", "a $ alone"),
        ("unclosed $(POD_NAMESPACE", "unclosed $(POD_NAMESPACE"),
        ("$(A)$(A)", "11"),
    ],
)
def test_dollar_paren_expansion_follows_the_kubelet(text: str, want: str) -> None:
    assert expand(text, {"POD_NAMESPACE": "mtlsdemo", "A": "1"}) == want


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("mtlsdemo", "docker.io/library/mtlsdemo:latest"),
        ("mtlsdemo:sha-1", "docker.io/library/mtlsdemo:sha-1"),
        ("grafana/grafana:11.1.0", "docker.io/grafana/grafana:11.1.0"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
    ],
)
def test_image_names_normalise_as_containerd_looks_them_up(ref: str, want: str) -> None:
    assert normalize_image(ref) == want


def test_container_security_context_wins_over_the_pods() -> None:
    pod = {"securityContext": {"runAsUser": 1, "runAsNonRoot": True, "fsGroup": 3}}
    c = {"securityContext": {"runAsUser": 2, "readOnlyRootFilesystem": True}}
    assert merged_security(pod, c) == {
        "runAsUser": 2,
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
    }


def test_named_target_ports_resolve_from_regular_containers_only() -> None:
    spec = {
        "initContainers": [{"name": "sidecar", "ports": [{"name": "mtd", "containerPort": 8443}]}],
        "containers": [{"name": "app", "ports": [{"name": "grpc", "containerPort": 50052}]}],
    }
    assert resolve_target_port(spec, "grpc") == 50052
    assert resolve_target_port(spec, "mtd") is None  # the trap of last month
    assert resolve_target_port(spec, 8443) == 8443


def files() -> list[ProjectedFile]:
    return [ProjectedFile("tls.crt", b"c", 0o440), ProjectedFile("tls.key", b"k", 0o440)]


def test_secret_volume_layout_is_the_atomic_writers(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    atomic_write_volume(root, files(), fs_group=None)
    data = os.readlink(root / "..data")
    assert data.startswith("..") and (root / data).is_dir()
    assert os.readlink(root / "tls.crt") == "..data/tls.crt"
    assert stat.S_IMODE((root / data).stat().st_mode) == 0o755
    st = (root / data / "tls.key").stat()
    assert stat.S_IMODE(st.st_mode) == 0o440
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())  # root:root under the kubelet
    # an update swaps ..data and removes the old directory
    atomic_write_volume(root, [ProjectedFile("tls.crt", b"new", 0o440)], fs_group=None)
    assert os.readlink(root / "..data") != data and not (root / data).exists()
    assert (root / "tls.crt").read_bytes() == b"new"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another group needs root")
def test_fs_group_sets_the_group_and_its_read_bit(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    atomic_write_volume(root, [ProjectedFile("tls.key", b"k", 0o400)], fs_group=10001)
    st = (root / "..data" / "tls.key").stat()
    assert st.st_gid == 10001 and stat.S_IMODE(st.st_mode) == 0o440
    d = (root / os.readlink(root / "..data")).stat()
    assert d.st_gid == 10001 and d.st_mode & stat.S_ISGID


@pytest.mark.parametrize(
    ("sc", "user", "refused"),
    [
        ({}, "", None),  # no policy: anything runs
        ({"runAsNonRoot": True, "runAsUser": 10001}, "", None),  # the pod says who
        ({"runAsNonRoot": True, "runAsUser": 0}, "10001", "runAsUser breaks non-root"),
        ({"runAsNonRoot": True}, "10001:10001", None),  # the image's numeric USER
        ({"runAsNonRoot": True}, "", "image will run as root"),  # no USER: root
        ({"runAsNonRoot": True}, "0", "image will run as root"),
        ({"runAsNonRoot": True}, "nobody", "non-numeric user (nobody), cannot verify"),
    ],
)
def test_run_as_non_root_is_verified_as_the_kubelet_does(
    sc: dict, user: str, refused: str | None
) -> None:
    why = non_root_refusal(sc, user)
    assert (why is None) if refused is None else (why is not None and refused in why)


@pytest.mark.parametrize(
    ("pod_sc", "users", "owner"),
    [
        ({"runAsUser": 10001}, [None, None], 10001),  # one user for all: the owner
        ({"runAsUser": 10001, "fsGroup": 10001}, [None], 10001),
        ({"runAsUser": 10001}, [None, 10002], None),  # two users: root keeps it
        ({}, [None], None),  # the image's user: not known to the kubelet
    ],
)
def test_the_service_account_token_is_its_users_alone_as_the_kubelet_writes_it(
    pod_sc: dict, users: list, owner: int | None
) -> None:
    containers = [
        {"name": f"c{i}", **({"securityContext": {"runAsUser": u}} if u is not None else {})}
        for i, u in enumerate(users)
    ]
    assert token_owner({"securityContext": pod_sc, "containers": containers}) == owner
