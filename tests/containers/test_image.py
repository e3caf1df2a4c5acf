"""The image: non-root with a fixed UID, no private keys, no compilers, one
image for every role."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile

import pytest

pytestmark = pytest.mark.containers
# A real PEM private key: the armor line followed by base64 (not just the words,
# which libraries carry as constants).
PEM_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]{64,}-----END")


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["docker", "run", "--rm"]
    if entrypoint:
        cmd += ["--entrypoint", entrypoint]
    return subprocess.run(
        [*cmd, image, *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_image_runs_as_fixed_non_root_user(image: str) -> None:
    r = run(image, entrypoint="id")
    assert r.stdout.startswith("uid=10001(mtlsdemo) gid=10001(mtlsdemo)"), r.stdout + r.stderr
    user = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.User}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert user == "10001:10001"


def test_every_role_is_a_command_of_the_one_image(image: str) -> None:
    for role in (
        ["certs", "bootstrap", "--help"],
        ["serve", "ledger", "--help"],
        ["serve", "gateway", "--help"],
        ["sidecar", "--help"],
        ["client", "--help"],
        ["loadgen", "--help"],
        ["handshake", "--help"],
        ["probe", "--help"],
    ):
        r = run(image, *role)
        assert r.returncode == 0, (role, r.stderr)


def test_no_private_key_and_no_compiler_in_the_image(image: str) -> None:
    cid = subprocess.run(
        ["docker", "create", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        raw = subprocess.run(["docker", "export", cid], capture_output=True, check=True).stdout
    finally:
        subprocess.run(["docker", "rm", cid], capture_output=True, check=False)
    keys, compilers, caches = [], [], []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            name = member.name
            base = name.rsplit("/", 1)[-1]
            if base in ("gcc", "cc", "g++", "clang", "make") and "bin" in name:
                compilers.append(name)
            if "/.cache/pip" in f"/{name}" or name.startswith("root/.cache"):
                caches.append(name)
            if (
                member.isfile()
                and member.size < 1_000_000
                and not name.startswith(("proc/", "sys/"))
            ):
                f = tar.extractfile(member)
                if f is not None and PEM_KEY.search(f.read()):
                    keys.append(name)
    assert keys == [], f"private keys in the image: {keys}"
    assert compilers == [], f"compilers in the image: {compilers}"
    assert caches == [], f"pip caches in the image: {caches[:5]}"


def test_image_size_is_reported(image: str, record_property) -> None:
    size = int(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", image],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    record_property("image_size_mb", round(size / 1e6))
    print(f"\nimage {image}: {size / 1e6:.0f} MB")
    assert size < 600e6  # the base is ~200 MB; the app and its wheels ~75 MB
