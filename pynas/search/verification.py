"""A search's pick measured at the end of the run: `verification.json` in the run folder.

    from pynas.search.log import SearchLog
    from pynas.search.report import summarise
    from pynas.search.verification import verify_best

    with SearchLog.open(Path("runs/a"), pynas.__version__) as log:
        config, best = log.config, summarise(log)["best"]
    record = verify_best("runs/a", config, best)   # measured here when the run's bundle is this machine's
    record = verify_best("runs/a", config, best, adb=OverAdb("R5CT1234", "build/profiler-aarch64/pynas-profile"))

The best architecture under T (`report.summarise`) is measured with `pynas.verify.measure.verify`
against the latency the search saw for it, when the run's bundle describes the machine in hand (or
an adb device is given); otherwise the record says why not (`{"skipped": reason}`): a bundle of
another machine, one that names its device without a fingerprint (a phone's table), a space whose
architectures pynas does not run (NAS-Bench-201's cells), no architecture under T. The record is
kept in its own file so `pynas search --report` and `--resume` keep it: `report.summarise` puts it
into summary.json as `verification` while its architecture is still the run's best.
"""
from __future__ import annotations

import json
from pathlib import Path

VERIFICATION = "verification.json"
OTHER_MACHINE = "bundle made on another machine"
NO_FINGERPRINT = "bundle describes a device without a fingerprint of a machine pynas runs on"


def read(folder: Path | str) -> dict | None:
    """The verification on record in run folder `folder`, or None."""
    path = Path(folder) / VERIFICATION
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{path}: unreadable verification ({type(error).__name__}: {error}); remove it, the next "
                         f"--resume measures again") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def write(folder: Path | str, record: dict) -> dict:
    path = Path(folder) / VERIFICATION
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return record


def verify_best(folder: Path | str, config: dict, best: dict | None, *, adb=None, skip: str | None = None,
                passes: int | None = None, tolerance: float | None = None, harness: dict | None = None) -> dict:
    """Measure the run's best architecture under T (`best`, as `report.summarise` gives it; the
    run's `config`, its log's) as the module docstring says, write and return the record: `skip`
    records that reason instead (e.g. '--no-verify')."""
    import warnings

    from pynas.verify.measure import DEFAULT_PASSES, DEFAULT_TOLERANCE, check_bundle, verify

    if skip is not None:
        return write(folder, {"skipped": skip})
    if best is None:
        return write(folder, {"skipped": "no architecture predicted under T"})
    from pynas.predictor import bundle as bundles
    from pynas.space import get_space

    if not get_space(config["space"]["name"], **config["space"]["options"]).lowerable:
        return write(folder, {"skipped": f"{config['space']['name']} architectures are not networks pynas runs",
                              "arch": best["arch"]})
    with warnings.catch_warnings():  # a bundle of another machine warned when the search started
        warnings.simplefilter("ignore")
        try:
            predictor = bundles.load(config["predictor"]["bundle"])
        except ValueError as error:
            return write(folder, {"skipped": f"bundle unreadable: {error}", "arch": best["arch"]})
    if predictor.manifest.files != config["predictor"]["files"]:
        return write(folder, {"skipped": f"bundle {predictor.name} changed since the search (its files' hashes "
                                         f"differ from the run's record)", "arch": best["arch"]})
    try:
        check_bundle(predictor, adb)
    except ValueError as error:
        reason = NO_FINGERPRINT if "without a fingerprint" in str(error) else OTHER_MACHINE
        return write(folder, {"skipped": reason, "detail": str(error), "arch": best["arch"]})
    try:
        [v] = verify([best["arch"]], predictor, predicted_ms=[best["latency_ms"]], adb=adb, harness=harness,
                     passes=passes or DEFAULT_PASSES, tolerance=tolerance or DEFAULT_TOLERANCE)
    except ValueError as error:  # e.g. the adb device went away during the search: the results stand
        return write(folder, {"skipped": f"measuring failed: {error}", "arch": best["arch"]})
    return write(folder, {**v.to_json(), "target_ms": config["reward"]["target_ms"],
                          "measured_over_target": v.measured_ms / config["reward"]["target_ms"]})


def on_record(folder: Path | str, best: dict | None) -> dict | None:
    """What summary.json says about verification: the record if it is of the current best (or a
    skip without an architecture), a note if the best changed since, None if never verified."""
    record = read(folder)
    if record is None:
        return None
    arch = record.get("arch")
    if arch is None or (best is not None and arch == best["arch"]):
        return record
    return {"skipped": "the verification on record is of an earlier best (resume or verify the run again)",
            "arch": arch}


def text(record: dict | None) -> str:
    """One or two lines for the text report."""
    if record is None:
        return ""
    if "skipped" in record:
        return f"verification: skipped ({record['skipped']})"
    spread = f"p10..p90 {record['p10_ms']:.4g}..{record['p90_ms']:.4g}"
    return (f"verified on {record['device']}: predicted {record['predicted_ms']:.4g} ms, measured "
            f"{record['measured_ms']:.4g} ms ({spread}; {record['clean_passes']} clean of {len(record['passes'])} "
            f"passes), measured/predicted {record['ratio']:.3f}, measured/T {record['measured_over_target']:.3f}: "
            f"{record['verdict']} at +-{100 * record['tolerance']:g}%\n  {record['reason']}")
