"""Command line entry point (``mcc``).

Exit codes follow sysexits-ish conventions users script against: 0 ok, 1 a target or query
failed, 2 invalid configuration or usage, 3 the store is unavailable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from multicloud_collector import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STORE = 3


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-c", "--config", metavar="FILE", help="config file (default: $MCC_CONFIG or ./providers.yaml)"
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mcc", description="multicloud-collector: GPU usage and cost in ClickHouse"
    )
    p.add_argument("--version", action="version", version=f"mcc {__version__}")
    p.add_argument("--log-level", default=None, help="debug, info, warning, error (default: from config)")
    p.add_argument("--log-format", default=None, choices=["auto", "json", "console"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("run", help="run the collector daemon")
    _add_config_arg(s)

    s = sub.add_parser("collect", help="run one collection cycle and print per-target status")
    _add_config_arg(s)
    s.add_argument("--once", action="store_true", required=True, help="one cycle (required)")
    s.add_argument(
        "--account", action="append", default=[], metavar="ID", help="only this account (repeatable)"
    )
    s.add_argument("--json", action="store_true", help="JSON list of per-target results")
    s.add_argument("--no-store", action="store_true", help="do not write to the store")

    s = sub.add_parser("validate", help="check the configuration")
    _add_config_arg(s)

    s = sub.add_parser("migrate", help="apply schema migrations to the configured store")
    _add_config_arg(s)
    s.add_argument("--dry-run", action="store_true", help="print the DDL instead of running it")

    s = sub.add_parser("query", help="run a read-only SQL query against the configured store")
    _add_config_arg(s)
    s.add_argument("sql")
    s.add_argument(
        "--format", "-f", default="PrettyCompact", help="ClickHouse output format (default PrettyCompact)"
    )

    s = sub.add_parser("providers", help="provider catalog and plugins")
    psub = s.add_subparsers(dest="providers_command", metavar="SUBCOMMAND")
    pl = psub.add_parser("list", help="list catalog providers, adapters and scrape kinds")
    _add_config_arg(pl)
    pl.add_argument("--json", action="store_true")
    pt = psub.add_parser("test", help="test an account's provider API: auth, endpoints, latency")
    _add_config_arg(pt)
    pt.add_argument("account", metavar="ACCOUNT", help="account id")
    pt.add_argument("--json", action="store_true")

    for name, what in (("inventory", "instances"), ("billing", "billing lines")):
        s = sub.add_parser(name, help=f"list an account's {what} straight from its provider API")
        _add_config_arg(s)
        s.add_argument("--account", required=True, metavar="ID", help="account id")
        s.add_argument("--json", action="store_true", help="JSON output")

    s = sub.add_parser("demo", help="run the collector against a simulated multi-cloud GPU fleet")
    s.add_argument(
        "--duration", type=float, default=30.0, metavar="S", help="seconds to collect (default 30)"
    )
    s.add_argument(
        "--data-dir", default=None, metavar="DIR", help="where the demo store lives (default ./mcc-demo)"
    )
    s.add_argument("--interval", default="2s", help="scrape interval (default 2s)")
    return p


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None or (args.command == "providers" and args.providers_command is None):
        parser.print_help(err)
        return 64
    from multicloud_collector import commands
    from multicloud_collector.logging import configure_logging

    # Until a command knows its config, log only warnings, to stderr: stdout is for results.
    configure_logging(args.log_level or "warning", args.log_format or "auto", stream=err)

    handler = {
        "run": commands.cmd_run,
        "collect": commands.cmd_collect,
        "validate": commands.cmd_validate,
        "migrate": commands.cmd_migrate,
        "query": commands.cmd_query,
        "providers": commands.cmd_providers_test
        if getattr(args, "providers_command", None) == "test"
        else commands.cmd_providers_list,
        "inventory": commands.cmd_inventory,
        "billing": commands.cmd_billing,
        "demo": commands.cmd_demo,
    }[args.command]
    try:
        return handler(args, out, err)
    except KeyboardInterrupt:
        return 130
