"""Command line: `gateway --config FILE` (or `python -m gateway`) runs the server."""

from __future__ import annotations

import argparse
import sys

import uvloop

from gateway.config import ConfigError, Settings, load_settings
from gateway.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway", description="CCTV live-view relay gateway")
    parser.add_argument(
        "command",
        nargs="*",
        help="nothing to run the server; 'audit verify' to check the audit log's hash chain;"
        " 'report' for the governance office's report",
    )
    parser.add_argument("--config", required=True, help="TOML settings file")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="grant the demo accounts access to the demo cameras and print links",
    )
    parser.add_argument("--from", dest="since", help="report: first day (2027-01-01) or time")
    parser.add_argument("--to", dest="until", help="report: last day (included), or an end time")
    parser.add_argument("--project", help="report: one project only")
    parser.add_argument(
        "--format", choices=("html", "csv", "json"), default="html", help="report: (html)"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == ["audit", "verify"]:
        return _verify_audit(settings.storage.database)
    if args.command == ["report"]:
        return _report(settings, args)
    if args.command:
        parser.error(f"unknown command {' '.join(args.command)!r}")
    setup_logging(settings.server.log_format)

    from gateway.app import create_app
    from gateway.control.cluster import NodeConflict
    from gateway.demo import NotADemo, prepare_demo
    from gateway.http.listener import serve
    from gateway.store import DatabaseError

    try:
        app = create_app(settings)  # reads the [inventory] file
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:
        # The message names the file or server; a PostgreSQL password never appears.
        print(f"gateway: [storage] database cannot be used: {exc}", file=sys.stderr)
        return 2
    if args.demo:
        try:
            links = prepare_demo(app)
        except NotADemo as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return 2
        app.on_startup.append(lambda _: _print_lines(links))
    # uvloop's C event loop: at 100 viewers most of the gateway's time is in the
    # loop's datagram sends and selector (bench/results.md).
    uvloop.install()
    try:
        serve(app, settings, lambda message: print(message, flush=True))
    except NodeConflict as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


def _verify_audit(database: str) -> int:
    """0: intact. 1: tampering found (named). 2: the database could not be read at all."""
    from gateway.store.verify import verify_database

    result = verify_database(database)
    if result.ok:
        print(
            f"audit log intact: {result.rows_checked} rows verified;"
            f" {result.grants_checked} grants match their last audited change"
        )
        if result.records_checked:
            print(
                f"{result.records_checked} police authorizations and emergency accesses"
                " match their last audited change"
            )
        if result.head is not None:
            print(f"head: row {result.head[0]}, hash {result.head[1]}")
        if result.grants_unchecked:
            print(
                f"{result.grants_unchecked} grants were last changed before grant hashes were"
                " audited: not compared"
            )
        return 0
    if result.unreadable:
        print(f"audit log cannot be read, nothing verified: {result.problem}", file=sys.stderr)
        return 2
    where = f" at row {result.first_bad_seq}" if result.first_bad_seq is not None else ""
    print(f"audit log BROKEN{where}: {result.problem}", file=sys.stderr)
    return 1


def _report(settings: Settings, args: argparse.Namespace) -> int:
    """The governance report on stdout. 0, or 2 (bad dates, database unreadable)."""
    from gateway.control.report import make, period
    from gateway.store.report import ReportUnavailable

    if not (args.since and args.until):
        print("gateway: report needs --from and --to", file=sys.stderr)
        return 2
    try:
        since, until = period(args.since, args.until)
        text = make(
            settings.storage.database,
            since,
            until,
            args.project,
            args.format,
            settings.governance.approval,
        )
    except ValueError as exc:
        print(f"gateway: report: {exc}", file=sys.stderr)
        return 2
    except ReportUnavailable as exc:
        print(f"gateway: report cannot be made: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


async def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
