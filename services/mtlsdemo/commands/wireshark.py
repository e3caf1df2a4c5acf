"""`mtlsdemo wireshark`: where the MTD/1 dissector is, or install it for Wireshark."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mtlsdemo.commands import flags

# Wireshark's personal Lua plugin folder (Linux and macOS): it loads every *.lua in it
PLUGINS = Path("~/.local/lib/wireshark/plugins")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "wireshark",
        help="the MTD/1 Wireshark dissector: print its path or install it",
    )
    p.set_defaults(handler=main)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--print-path", action="store_true", help="print the dissector's path")
    what.add_argument(
        "--install",
        action="store_true",
        help=f"copy it into Wireshark's personal plugin folder ({PLUGINS}/)",
    )
    flags.add(p, "--plugins-dir", default=str(PLUGINS), help="where --install copies it")


def main(args: argparse.Namespace) -> int:
    from mtlsdemo.wire.tables import dissector_path

    source = dissector_path()
    if args.print_path:
        print(source)
        return 0
    target_dir = Path(args.plugins_dir).expanduser()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "mtlsdemo-mtd.lua"
    shutil.copyfile(source, target)
    print(
        f"installed {target}: Wireshark dissects MTD/1 from its next start; set the key log "
        "in Preferences > Protocols > MTD (or -o mtd.keylog_file:FILE); decryption needs "
        "lua-luaossl (Debian: apt install lua-luaossl)"
    )
    return 0
