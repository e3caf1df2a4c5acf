"""The policy file `mtlsdemo run` keeps for the `break authz-*` scenarios.

Without `--authz-policy`, `run` still passes every enforcer a policy file beside its
`--allow-id` list (both must allow): this one, empty — no policy, so it allows
everything and the lists decide, exactly as before. A scenario writes a policy into
it (the enforcers follow the file at their next decision), shows what that policy
does to the running mesh, and writes it back empty. A file without the marker (the
user's own policy) is never rewritten."""

from __future__ import annotations

from pathlib import Path

from mtlsdemo.pki.files import write_atomic

NAME = "authz-policy.yaml"
MARKER = "# written by `mtlsdemo run` for `mtlsdemo break authz-*`"
EMPTY = (
    f"{MARKER}: no policy here, so nothing is\n"
    "# decided by this file; the --allow-id lists decide (a scenario writes one here\n"
    "# for its run and puts this back).\n"
    "policies: []\n"
)


def path_in(data_dir: Path) -> Path:
    return Path(data_dir) / NAME


def reset(path: Path) -> None:
    """The file as `run` starts it: no policy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, EMPTY.encode())


def is_scenario_file(path: Path) -> bool:
    """Whether ``path`` is the file `run` keeps (and so may be rewritten)."""
    try:
        return path.read_text().startswith(MARKER)
    except OSError:
        return False


def write(path: Path, policy_yaml: str) -> None:
    """One scenario's policy, under the marker (so `break --restore` may undo it)."""
    write_atomic(path, f"{MARKER}: a scenario's policy, put back by it\n{policy_yaml}".encode())
