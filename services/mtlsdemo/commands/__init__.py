"""The commands: one module each, registering its parser and turning the parsed
flags into a typed config at the edge (``commands.common.typed``). Below these
modules nothing sees an ``argparse.Namespace``; ``cli.py`` only assembles the
parser and is the one error boundary."""

from mtlsdemo.commands import (
    agent,
    authz,
    bench,
    breakcmd,
    capture,
    certs,
    chaos,
    client,
    console,
    handshake,
    illustrate,
    probe,
    run,
    serve,
    sidecar,
    tour,
    wireshark,
)

# the order of `mtlsdemo --help`
MODULES = (
    certs,
    serve,
    run,
    client,
    sidecar,
    agent,
    handshake,
    illustrate,
    authz,
    breakcmd,
    tour,
    capture,
    wireshark,
    console,
    chaos,
    bench,
    probe,
)
