"""`pynas db summary | export | import`: the measurement store."""
from __future__ import annotations

import argparse

from pynas import ui
from pynas.cli import flags


def existing_store(db):
    """The store at `db` (default: $PYNAS_DB or the cache path) for commands that only read it: a
    mistyped path or an empty file is an error, never made into a new store."""
    from pynas.store import Store, default_path

    return Store(default_path() if db is None else db, create=False)


def cmd_db_summary(args) -> None:
    with existing_store(args.db) as store:
        summary = store.summary()
    print(f"store {summary.path}")
    span = f", {summary.first} to {summary.last}" if summary.measurements else ""
    print(f"{summary.measurements} measurements of {summary.keys} keys on {summary.devices} device(s) in "
          f"{summary.sessions} session(s){span}")
    if summary.rows:
        rows = [[r.device_id, r.cpu_model, r.backend, r.backend_version, r.threads, r.kind, r.count, r.first, r.last]
                for r in summary.rows]
        print()
        print(ui.table(["device", "cpu", "backend", "version", "threads", "kind", "count", "first", "last"], rows,
                       right={4, 6}))


def cmd_db_export(args) -> None:
    from pynas.store import export_jsonl

    filters = {name: getattr(args, name) for name in ("device_id", "backend", "threads", "session")
               if getattr(args, name) is not None}
    with existing_store(args.db) as store:
        count = export_jsonl(store, args.output, overwrite=args.force, **filters)
    print(f"wrote {count} measurements to {args.output}")


def cmd_db_import(args) -> None:
    from pynas.store import Store, import_jsonl

    # Each file is one transaction: a bad file imports nothing, the files before it stay imported.
    with Store(args.db) as store:
        for path in args.files:
            result = import_jsonl(store, path)
            print(f"{path}: {result.records} measurements, {result.added} added, "
                  f"{result.duplicates} already in {store.path}")


def add_parsers(commands) -> None:
    db = commands.add_parser("db", help="the measurement store: summary, export, import",
                             description="The SQLite store of latency measurements: $PYNAS_DB if set, else "
                                         "$XDG_CACHE_HOME/pynas/measurements.sqlite (~/.cache by default).")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--db", metavar="PATH", help="the store file (default: $PYNAS_DB or the cache path)")
    summary = db_commands.add_parser("summary", parents=[store_option],
                                     help="counts per device, backend, threads and kind; time span")
    summary.set_defaults(run=cmd_db_summary)
    export = db_commands.add_parser("export", parents=[store_option],
                                    help="write measurements to a portable JSON Lines file (.gz: compressed)")
    export.add_argument("output", metavar="FILE")
    export.add_argument("--device-id", help="only this device's measurements")
    export.add_argument("--backend", help="only this backend's")
    export.add_argument("--threads", type=flags.threads, help="only those taken with this many threads")
    export.add_argument("--session", help="only this session's")
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    export.set_defaults(run=cmd_db_export)
    load = db_commands.add_parser("import", parents=[store_option],
                                  help="add portable files' measurements; ones already stored are skipped")
    load.add_argument("files", metavar="FILE", nargs="+")
    load.set_defaults(run=cmd_db_import)
