"""Run by scripts/test-arm64.sh with the emulated aarch64 Python and the installed aarch64 wheel,
around a run of the static aarch64 pynas-profile under qemu:

    python3 check-profiler-arm64.py write OPLIST          # a few segments of mnasnet-a1
    python3 check-profiler-arm64.py import OPLIST JSONL   # import into a temporary store and check

`import` fails unless every entry was measured once and the records are this (emulated) device's
native series: the same device id and backend_version as the aarch64 wheel reports in Python.
"""
import sys
import tempfile
from pathlib import Path

from pynas.profiling.backends import backend_version
from pynas.profiling.oplist import read_oplist, segment_entries, write_oplist
from pynas.store import Store, import_jsonl, this_device

# Small segments: under qemu -cpu max the NEON kernels run about 1000x slower than natively.
SEGMENTS = ["s3.1", "s6.0", "head"]


def write(oplist: str) -> None:
    count = write_oplist(oplist, segment_entries("mnasnet-a1", SEGMENTS))
    print(f"check-profiler-arm64: {oplist}: {count} entries")


def check(oplist: str, jsonl: str) -> None:
    keys = sorted(r.key for r in read_oplist(oplist))
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite") as store:
        result = import_jsonl(store, jsonl)
        measurements = list(store.measurements())
    errors = []
    if sorted(m.op.key for m in measurements) != keys:
        errors.append(f"measured keys {sorted(m.op.key for m in measurements)}, expected {keys}")
    device, version = this_device(), backend_version("native")
    for m in measurements:
        c = m.context
        if c.device != device:
            errors.append(f"{m.op.key}: device {c.device}, Python sees {device}")
        if (c.backend, c.backend_version) != ("native", version):
            errors.append(f"{m.op.key}: backend {c.backend} {c.backend_version}, Python's native is {version}")
        print(f"  {m.op.key}: {m.stats.median_ms:.3f} ms ({m.stats.runs} runs)")
    print(f"check-profiler-arm64: imported {result.added} records, device {device.device_id}, {version}")
    if errors:
        sys.exit("check-profiler-arm64: FAILED:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "import":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: check-profiler-arm64.py write OPLIST | import OPLIST JSONL")
