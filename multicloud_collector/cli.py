"""Command line entry point (``mcc``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from multicloud_collector import __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcc", description="multicloud-collector")
    p.add_argument("--version", action="version", version=f"mcc {__version__}")
    p.add_subparsers(dest="command")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 64
    return 0
