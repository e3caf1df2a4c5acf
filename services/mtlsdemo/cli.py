"""The ``mtlsdemo`` command line: assembles the commands' parsers (one module
each, in ``mtlsdemo.commands``) and is the one error boundary: every expected
failure is one line on stderr and a non-zero exit, never a traceback.

Each flag has an environment twin (see mtlsdemo.commands.flags), so compose files and
Kubernetes manifests can configure by env alone.
"""

from __future__ import annotations

import argparse
import os
import sys

from mtlsdemo import __version__
from mtlsdemo.commands import flags
from mtlsdemo.handshake import build
from mtlsdemo.logline import setup_logging
from mtlsdemo.pki.errors import PkiError

EXIT_USAGE = 2
# gRPC's C core logs its own lines (I1127 ... ssl_transport_security.cc) to stderr;
# every failure is explained by us instead. Before grpc is first imported; a user's
# GRPC_VERBOSITY=debug still wins.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlsdemo",
        description="mutual TLS, step by step: a CA and its certificates (certs), the "
        "services (serve, run), a client and load (client, loadgen), the MTD/1 "
        "sidecar and one traced handshake (sidecar, handshake), failures on purpose "
        "(break), the four steps walked through (tour), the live web page (console), "
        "faults under load with an audit (chaos), speed (bench) and a health probe "
        "(probe). Every flag has an MTLSDEMO_* environment twin.",
    )
    parser.add_argument(
        "--version", action="version", version=f"mtlsdemo {__version__}, {build()} core"
    )
    flags.add(parser, "--log-level", default="info", help="debug, info, warning, error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from mtlsdemo.commands import MODULES

    for module in MODULES:
        module.register(sub)
    _global_flags_everywhere(parser)
    _describe_and_exemplify(parser)
    return parser


def _describe_and_exemplify(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Every subcommand's --help starts with what it does (its one-line help) and ends
    with two examples (commands/examples.py)."""
    from mtlsdemo.commands.examples import EXAMPLES

    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {c.dest: c.help for c in action._choices_actions}
        for name, child in action.choices.items():
            full = f"{path} {name}".strip()
            child.description = child.description or helps.get(name)
            if full in EXAMPLES:
                child.epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[full])
                child.formatter_class = argparse.RawDescriptionHelpFormatter
            _describe_and_exemplify(child, full)


def _global_flags_everywhere(parser: argparse.ArgumentParser) -> None:
    """`mtlsdemo certs bootstrap --log-level debug` works as well as before the
    command: every subcommand accepts the global flags, without overriding a value
    given before it (default SUPPRESS)."""
    todo = [parser]
    while todo:
        p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    child.add_argument(
                        "--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS
                    )
                    todo.append(child)


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
    except flags.FlagError as e:  # a bad MTLSDEMO_* value: the flag's twin, named
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = flags.resolve_lists(parser.parse_args(argv))
    except flags.FlagError as e:  # a bad MTLSDEMO_* value for this command's flag
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for line in flags.weakened(args):
        print(line, file=sys.stderr, flush=True)
    setup_logging(args.log_level)  # every line escaped: peers cannot forge one
    from mtlsdemo.agent.config import AgentConfigError
    from mtlsdemo.rpc.server import ConfigError
    from mtlsdemo.sidecar.config import SidecarConfigError
    from mtlsdemo.trust import PolicyError
    from mtlsdemo.trust.authz import AuthzPolicyError
    from mtlsdemo.waiting import WaitTimeout
    from mtlsdemo.wire.errors import CaptureError

    try:
        return int(args.handler(args))
    except (
        PkiError,
        AgentConfigError,
        ConfigError,
        SidecarConfigError,
        PolicyError,
        AuthzPolicyError,
        CaptureError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except WaitTimeout as e:  # something asked for never came: the check failed
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
