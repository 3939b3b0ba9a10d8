"""The measurement store: latencies measured on devices, kept in SQLite, moved between machines
as portable JSON Lines files.

    from pynas.store import Context, OpKey, Stats, Store

    with Store() as store:                      # $PYNAS_DB, else ~/.cache/pynas/measurements.sqlite
        context = Context.here("native", "0.1.0", threads=1)
        for key in store.missing(context, [k.key for k in kernels]):   # resume: only what is left
            ...time it...
            store.record(context, OpKey(key, kind, features), Stats.from_samples(ms), harness={...})

Modules: fingerprint (the device and its id), records (the measurement's parts, validated),
db (the SQLite store), portable (export and import files), fields and errors (shared checks).
"""
from pynas.store.db import APPLICATION_ID, SCHEMA_VERSION, MergeResult, Store, Summary, SummaryRow, default_path
from pynas.store.errors import FieldError, StoreError
from pynas.store.fingerprint import DeviceFingerprint, this_device
from pynas.store.portable import ImportResult, export_jsonl, import_jsonl
from pynas.store.records import NETWORK_KIND, Context, Measurement, OpKey, Stats

__all__ = ["APPLICATION_ID", "NETWORK_KIND", "SCHEMA_VERSION", "Context", "DeviceFingerprint", "FieldError",
           "ImportResult", "Measurement", "MergeResult", "OpKey", "Stats", "Store", "StoreError", "Summary",
           "SummaryRow", "default_path", "export_jsonl", "import_jsonl", "this_device"]
