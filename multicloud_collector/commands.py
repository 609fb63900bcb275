"""Implementations of the ``mcc`` sub-commands (argument parsing lives in ``cli.py``)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import orjson

from multicloud_collector.config import Config, ConfigError, format_problems, load_config, resolve_config_path
from multicloud_collector.logging import configure_logging

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_STORE = 3


def _known_kinds() -> set[str]:
    """Scrape kinds from built-in and installed plugins: exporters may use any of them."""
    from multicloud_collector.plugins.manager import Registry, get_plugin_manager

    return set(Registry(get_plugin_manager()).scrapers)


def _load(args: argparse.Namespace, err: TextIO) -> Config | None:
    """Load and validate the config; on failure print every problem (one per line) and return None."""
    path = resolve_config_path(getattr(args, "config", None), os.environ)
    try:
        config = load_config(path, os.environ, known_kinds=_known_kinds())
    except ConfigError as exc:
        print(format_problems([*exc.problems, *exc.warnings]), file=err)
        return None
    if config.warnings:
        print(format_problems(config.warnings), file=err)
    return config


def _setup_logging(
    args: argparse.Namespace, config: Config | None, err: TextIO, *, default_level: str | None = None
) -> None:
    """Daemon-like commands log at the configured level; one-shot queries only warn unless asked."""
    level = args.log_level or default_level or (config.collector.log.level if config else "info")
    fmt = args.log_format or (config.collector.log.format if config else "auto")
    configure_logging(level, fmt, stream=err)


# -- validate ------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _setup_logging(args, None, err, default_level="warning")
    path = resolve_config_path(args.config, os.environ)
    try:
        config = load_config(path, os.environ, known_kinds=_known_kinds())
    except ConfigError as exc:
        print(format_problems([*exc.problems, *exc.warnings]), file=out)
        return EXIT_CONFIG
    if config.warnings:
        print(format_problems(config.warnings), file=out)
    print("ok", file=out)
    return EXIT_OK


# -- run -----------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args, err)
    if config is None:
        return EXIT_CONFIG
    _setup_logging(args, config, err)
    from multicloud_collector.daemon import Daemon
    from multicloud_collector.sink.embedded import StoreLockedError

    try:
        return asyncio.run(Daemon(config).run())
    except StoreLockedError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_STORE


# -- collect --once ------------------------------------------------------------------------
def cmd_collect(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args, err)
    if config is None:
        return EXIT_CONFIG
    _setup_logging(args, config, err)
    from multicloud_collector.collect_once import UnknownAccountError, collect_once, format_results
    from multicloud_collector.sink.embedded import StoreLockedError

    try:
        results = asyncio.run(collect_once(config, accounts=args.account, store=not args.no_store))
    except UnknownAccountError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_CONFIG
    except StoreLockedError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_STORE
    if args.json:
        out.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(format_results(results))
    return EXIT_FAILED if any(r["status"] != "ok" for r in results) else EXIT_OK


# -- migrate -------------------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args, err)
    if config is None:
        return EXIT_CONFIG
    _setup_logging(args, config, err, default_level="warning")
    from multicloud_collector.migrations import MigrationError
    from multicloud_collector.store_query import QueryError, migrate_server, migrate_store

    emb, ch = config.sink.embedded, config.sink.clickhouse
    try:
        if config.sink.kind == "clickhouse" and ch is not None:
            report = asyncio.run(migrate_server(ch, dry_run=args.dry_run))
        else:
            report = asyncio.run(
                migrate_store(
                    embedded_path=Path(emb.path),
                    database=emb.database,
                    listen=config.collector.listen,
                    dry_run=args.dry_run,
                )
            )
    except QueryError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_STORE if exc.store_unavailable else EXIT_FAILED
    except MigrationError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    for line in report.lines():
        print(line, file=out)
    return EXIT_OK


# -- query ---------------------------------------------------------------------------------
def cmd_query(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args, err)
    if config is None:
        return EXIT_CONFIG
    _setup_logging(args, config, err, default_level="warning")
    from multicloud_collector.store_query import QueryError, query_server, run_query

    emb, ch = config.sink.embedded, config.sink.clickhouse
    try:
        if config.sink.kind == "clickhouse" and ch is not None:
            data = asyncio.run(query_server(ch, args.sql, args.format))
        else:
            data = asyncio.run(
                run_query(
                    args.sql,
                    fmt=args.format,
                    listen=config.collector.listen,
                    embedded_path=Path(emb.path),
                    database=emb.database,
                )
            )
    except QueryError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_STORE if getattr(exc, "store_unavailable", False) else EXIT_FAILED
    _write_bytes(out, data)
    return EXIT_OK


def _write_bytes(out: TextIO, data: bytes) -> None:
    buf = getattr(out, "buffer", None)
    if buf is not None:
        out.flush()
        buf.write(data)
        buf.flush()
    else:
        out.write(data.decode("utf-8", errors="replace"))


# -- providers list ------------------------------------------------------------------------
def cmd_providers_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = _load(args, err)
    if config is None:
        return EXIT_CONFIG
    from multicloud_collector.plugins.manager import (
        Registry,
        describe_plugins,
        format_table,
        get_plugin_manager,
    )

    rows: list[dict[str, Any]] = describe_plugins(config, Registry(get_plugin_manager()))
    if args.json:
        out.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        text = format_table(rows)
        out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


# -- provider APIs: inventory, billing, providers test -----------------------------------------
def _provider_command(name: str) -> Callable[[argparse.Namespace, TextIO, TextIO], int]:
    def command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
        config = _load(args, err)
        if config is None:
            return EXIT_CONFIG
        _setup_logging(args, config, err, default_level="warning")
        from multicloud_collector.providers import commands as provider_commands

        result: int = getattr(provider_commands, name)(config, args, out, err)
        return result

    command.__name__ = f"cmd_{name}"
    return command


cmd_inventory = _provider_command("inventory")
cmd_billing = _provider_command("billing")
cmd_providers_test = _provider_command("providers_test")


# -- demo ----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from multicloud_collector.demo.runner import run_demo

    configure_logging(args.log_level or "warning", args.log_format or "auto", stream=err)
    data_dir = Path(args.data_dir or "./mcc-demo").resolve()
    return asyncio.run(run_demo(duration=args.duration, data_dir=data_dir, interval=args.interval, out=out))


__all__ = [
    "cmd_billing",
    "cmd_collect",
    "cmd_demo",
    "cmd_inventory",
    "cmd_migrate",
    "cmd_providers_list",
    "cmd_providers_test",
    "cmd_query",
    "cmd_run",
    "cmd_validate",
]
