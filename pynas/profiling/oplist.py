"""Op list files: what the on-device profiler `pynas-profile` measures, without Python there.

An op list names each measurement (key, kind, features) and the steps of the native network that
measures it, exactly as `pynas.native.runner.NativeNetwork` builds it: the network is built into a
`NetworkRecorder` (it has `_core.Network`'s builder methods and writes the calls down; weights
are shape-only placeholders, so neither torch nor random weights are needed), so the mapping of
an architecture to native steps lives in one place. The format is defined in
cpp/profiling/oplist.h; in short:

    pynas-oplist 1
    entry key=mbconv_n1_i16x112x112_... kind=mbconv arch=net_res224_cls1000:... segment=s1.0
    features {"cin":16,"h":112,...}
    input h=112 w=112 c=16
    block x=0 cout=24 mid=96 kernel=3 stride=2 expand_act=re dw_act=re project_act=none se_reduced=0 residual=-1 band_rows=0
    output x=1

    from pynas.profiling.oplist import network_entry, segment_entries, write_oplist
    entries = segment_entries("mnasnet-a1") + [network_entry("mnasnet-a1")]
    write_oplist("a1.oplist", entries)        # then: pynas-profile a1.oplist -o a1.jsonl
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from pynas.arch import Arch
from pynas.space.catalogue import Item, segments_of

FORMAT = "pynas-oplist"
VERSION = 1
ACTS = ("none", "re", "r6", "hs", "sw")
GATES = ("sigmoid", "hsigmoid")
# Fields of each step in the order they are written; block's expand_act is written only with an
# expand (mid > 0), se_act and se_gate only with SE (se_reduced > 0), as oplist.h requires.
STEP_FIELDS = {
    "input": ("h", "w", "c"),
    "conv": ("x", "cout", "kernel", "stride", "act", "residual"),
    "dwconv": ("x", "kernel", "stride", "act"),
    "pointwise": ("x", "cout", "act", "residual", "groups", "shuffle"),
    "shuffle": ("x", "groups"),
    "block": ("x", "cout", "mid", "kernel", "stride", "expand_act", "dw_act", "project_act", "se_reduced", "se_act",
              "se_gate", "residual", "band_rows"),
    "se": ("x", "reduced", "act", "gate"),
    "avgpool": ("x", "stride"),
    "add": ("a", "b"),
    "gap": ("x",),
    "fc": ("x", "cout", "act"),
    "output": ("x",),
    # cell networks' steps (cpp/network/cell_steps.cc)
    "act": ("x", "act"),
    "pool": ("x", "kind", "kernel", "stride", "pad"),
    "dwconv_dilated": ("x", "kernel", "stride", "dilation", "act"),
    "sum": ("xs",),
    "concat": ("xs",),
    "crop": ("x",),
    "zeros": ("h", "w", "c"),
    "affine": ("x",),
}
_NAME_FIELDS = {"act", "expand_act", "dw_act", "project_act", "se_act", "se_gate", "gate", "kind"}
POOLS = ("avg", "max")
_NO_SPACE = re.compile(r"\S+")


class OpListError(ValueError):
    """A bad op list file or entry; the message names the file and line, or the entry, and the field."""


@dataclass(frozen=True)
class Step:
    op: str  # a STEP_FIELDS name
    fields: dict[str, int | str]

    def line(self) -> str:
        return " ".join([self.op] + [f"{name}={value}" for name, value in self.fields.items()])


@dataclass(frozen=True)
class OpListRecord:
    """An entry as read back from a file: its fields and the recorded steps."""

    key: str
    kind: str
    features: dict
    arch: str
    segment: str | None
    steps: tuple[Step, ...]
    line: int = field(default=0, compare=False)


def _act(field_name: str, value: Any) -> str:
    if value not in ACTS:
        raise ValueError(f"{field_name}: expected one of {', '.join(ACTS)}, got {value!r}")
    return value


def _gate(field_name: str, value: Any) -> str:
    if value not in GATES:
        raise ValueError(f"{field_name}: expected one of {', '.join(GATES)}, got {value!r}")
    return value


def _out_size(size: int, kernel: int, stride: int) -> int:
    # Network::conv / dwconv / block: "same" padding kernel // 2 (cpp/network/network.cc).
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _windows(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    # cell_steps.cc's pooled(): pool and dwconv_dilated's output size.
    out = (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError("window larger than the padded input")
    return out


class NetworkRecorder:
    """Stands in for `pynas._core.Network` while a network is built: same methods, arguments,
    tensor numbering and output shapes; it keeps the steps instead of weights (only the weights'
    shapes are read, for cout, kernel, mid and SE widths)."""

    def __init__(self):
        self.steps: list[Step] = []
        self._shapes: list[tuple[int, int, int]] = []
        self.finalized = False

    def _tensor(self, field_name: str, t: int) -> int:
        if not isinstance(t, (int, np.integer)) or not 0 <= t < len(self._shapes):
            raise ValueError(f"{field_name}: no tensor {t!r} in this network (tensors 0..{len(self._shapes) - 1})")
        return int(t)

    def _residual(self, residual: int, out: tuple[int, int, int]) -> int:
        if residual == -1:
            return -1
        residual = self._tensor("residual", residual)
        if self._shapes[residual] != out:
            raise ValueError(f"residual: tensor {residual} has shape {self._shapes[residual]}, the output {out}")
        return residual

    def _add(self, op: str, out: tuple[int, int, int], **fields) -> int:
        if self.finalized:
            raise RuntimeError("network already finalized: no more steps can be added")
        if not self._shapes and op != "input":
            raise RuntimeError(f"{op}: expected input() first")
        self.steps.append(Step(op, {name: fields[name] for name in STEP_FIELDS[op] if name in fields}))
        self._shapes.append(tuple(int(v) for v in out))
        return len(self._shapes) - 1

    def shape(self, tensor: int) -> tuple[int, int, int]:
        return self._shapes[self._tensor("tensor", tensor)]

    def input(self, h: int, w: int, c: int) -> int:
        if self._shapes:
            raise RuntimeError("network input already defined")
        return self._add("input", (h, w, c), h=int(h), w=int(w), c=int(c))

    def conv(self, x, weights, bias, kernel, stride, act="none", residual=-1) -> int:
        h, w, c = self.shape(x)
        cout = weights.shape[0]
        if tuple(weights.shape) != (cout, kernel, kernel, c):
            raise ValueError(f"weights: expected Cout x {kernel} x {kernel} x {c}, got {tuple(weights.shape)}")
        out = (_out_size(h, kernel, stride), _out_size(w, kernel, stride), cout)
        return self._add("conv", out, x=x, cout=cout, kernel=kernel, stride=stride, act=_act("act", act),
                         residual=self._residual(residual, out))

    def dwconv(self, x, weights, bias, stride, act="none") -> int:
        h, w, c = self.shape(x)
        k = weights.shape[0]
        if tuple(weights.shape) != (k, k, c):
            raise ValueError(f"weights: expected k x k x {c}, got {tuple(weights.shape)}")
        out = (_out_size(h, k, stride), _out_size(w, k, stride), c)
        return self._add("dwconv", out, x=x, kernel=k, stride=stride, act=_act("act", act))

    def pointwise(self, x, weights, bias, act="none", residual=-1, groups=1, shuffle=False) -> int:
        h, w, c = self.shape(x)
        if not isinstance(groups, int) or groups < 1 or c % groups:
            raise ValueError(f"groups: expected a positive divisor of {c}, got {groups!r}")
        if weights.ndim != 2 or weights.shape[1] != c // groups:
            raise ValueError(f"weights: expected Cout x {c // groups}, got {tuple(weights.shape)}")
        out = (h, w, weights.shape[0])
        return self._add("pointwise", out, x=x, cout=weights.shape[0], act=_act("act", act),
                         residual=self._residual(residual, out), groups=groups, shuffle=int(bool(shuffle)))

    def shuffle(self, x, groups) -> int:
        h, w, c = self.shape(x)
        if not isinstance(groups, int) or groups < 1 or c % groups:
            raise ValueError(f"groups: expected a positive divisor of {c}, got {groups!r}")
        return self._add("shuffle", (h, w, c), x=x, groups=groups)

    def block(self, x, cout, *, expand_w=None, expand_b=None, expand_act="none", dw_w, dw_b, stride, dw_act="none",
              se_w_reduce=None, se_b_reduce=None, se_w_expand=None, se_b_expand=None, se_act="re",
              se_gate="sigmoid", project_w, project_b, project_act="none", residual=-1, band_rows=0) -> int:
        h, w, c = self.shape(x)
        mid = expand_w.shape[0] if expand_w is not None else c
        k = dw_w.shape[0]
        if tuple(dw_w.shape) != (k, k, mid):
            raise ValueError(f"dw_w: expected k x k x {mid}, got {tuple(dw_w.shape)}")
        if tuple(project_w.shape) != (cout, mid):
            raise ValueError(f"project_w: expected {cout} x {mid}, got {tuple(project_w.shape)}")
        out = (_out_size(h, k, stride), _out_size(w, k, stride), cout)
        fields = dict(x=x, cout=cout, mid=mid if expand_w is not None else 0, kernel=k, stride=stride,
                      dw_act=_act("dw_act", dw_act), project_act=_act("project_act", project_act),
                      se_reduced=se_w_reduce.shape[0] if se_w_reduce is not None else 0,
                      residual=self._residual(residual, out), band_rows=band_rows)
        if expand_w is not None:
            fields["expand_act"] = _act("expand_act", expand_act)
        if se_w_reduce is not None:
            fields.update(se_act=_act("se_act", se_act), se_gate=_gate("se_gate", se_gate))
        return self._add("block", out, **fields)

    def se(self, x, w_reduce, b_reduce, w_expand, b_expand, act, gate) -> int:
        return self._add("se", self.shape(x), x=x, reduced=w_reduce.shape[0], act=_act("act", act),
                         gate=_gate("gate", gate))

    def avgpool(self, x, stride) -> int:
        h, w, c = self.shape(x)
        return self._add("avgpool", ((h - 1) // stride + 1, (w - 1) // stride + 1, c), x=x, stride=stride)

    def add(self, a, b) -> int:
        if self.shape(a) != self.shape(b):
            raise ValueError(f"add: shapes {self.shape(a)} and {self.shape(b)} differ")
        return self._add("add", self.shape(a), a=a, b=b)

    def gap(self, x) -> int:
        return self._add("gap", (1, 1, self.shape(x)[2]), x=x)

    def fc(self, x, weights, bias, act="none") -> int:
        return self._add("fc", (1, 1, weights.shape[0]), x=x, cout=weights.shape[0], act=_act("act", act))

    # Cell networks' steps (pynas.native.runner's cell ops), with _core.Network's checks and shapes.
    def act(self, x, act) -> int:
        return self._add("act", self.shape(x), x=x, act=_act("act", act))

    def pool(self, x, kind, kernel, stride, pad) -> int:
        if kind not in POOLS:
            raise ValueError(f"kind: expected avg or max, got {kind!r}")
        if kernel < 1 or stride < 1 or not 0 <= pad < kernel:
            raise ValueError("pool: expected kernel >= 1, stride >= 1, 0 <= pad < kernel")
        h, w, c = self.shape(x)
        out = (_windows(h, kernel, stride, pad), _windows(w, kernel, stride, pad), c)
        return self._add("pool", out, x=x, kind=kind, kernel=kernel, stride=stride, pad=pad)

    def dwconv_dilated(self, x, weights, bias, stride, dilation, act="none") -> int:
        h, w, c = self.shape(x)
        k = weights.shape[0]
        if tuple(weights.shape) != (k, k, c):
            raise ValueError(f"weights: expected k x k x {c}, got {tuple(weights.shape)}")
        pad = dilation * (k - 1) // 2
        out = (_windows(h, k, stride, pad, dilation), _windows(w, k, stride, pad, dilation), c)
        return self._add("dwconv_dilated", out, x=x, kernel=k, stride=stride, dilation=dilation, act=_act("act", act))

    def sum(self, xs) -> int:
        xs = [self._tensor("xs", x) for x in xs]
        if len(xs) < 2:
            raise ValueError("sum: expected at least 2 inputs")
        if len({self._shapes[x] for x in xs}) != 1:
            raise ValueError(f"sum: input shapes differ: {[self._shapes[x] for x in xs]}")
        return self._add("sum", self._shapes[xs[0]], xs=",".join(map(str, xs)))

    def concat(self, xs) -> int:
        xs = [self._tensor("xs", x) for x in xs]
        if len(xs) < 2:
            raise ValueError("concat: expected at least 2 inputs")
        if len({self._shapes[x][:2] for x in xs}) != 1:
            raise ValueError(f"concat: inputs of different H x W: {[self._shapes[x] for x in xs]}")
        h, w, _ = self._shapes[xs[0]]
        return self._add("concat", (h, w, sum(self._shapes[x][2] for x in xs)), xs=",".join(map(str, xs)))

    def crop(self, x) -> int:
        h, w, c = self.shape(x)
        if h < 2 or w < 2:
            raise ValueError("crop: expected at least 2 x 2 pixels")
        return self._add("crop", (h - 1, w - 1, c), x=x)

    def zeros(self, h, w, c) -> int:
        if not (h > 0 and w > 0 and c > 0):
            raise ValueError("zeros: expected a positive H x W x C shape")
        return self._add("zeros", (h, w, c), h=int(h), w=int(w), c=int(c))

    def affine(self, x, scale, shift) -> int:
        return self._add("affine", self.shape(x), x=x)

    def finalize(self, output: int) -> None:
        output = self._tensor("output", output)
        if output == 0:
            raise ValueError("output: expected a tensor made by a step, not the input (0)")
        self.steps.append(Step("output", {"x": output}))
        self.finalized = True


def record_steps(arch: Arch | str, segment: str | None = None, *, band_rows: int = 0) -> list[Step]:
    """The steps NativeNetwork builds for `arch` (or one of its segments), recorded."""
    from pynas.native.runner import NativeNetwork

    recorder = NetworkRecorder()
    NativeNetwork(arch, weights="shapes", segment=segment, band_rows=band_rows, network=recorder)
    return recorder.steps


def segment_entries(arch: Arch | str, segment_ids: Iterable[str] | None = None) -> list[Item]:
    """Entries for the distinct segments of `arch` (the first of each key), or of the given ids."""
    arch = _resolve(arch)
    found = list(segments_of(arch))
    if segment_ids is not None:
        wanted = list(segment_ids)
        by_id = {s.id: s for s in found}
        unknown = [sid for sid in wanted if sid not in by_id]
        if unknown:
            raise ValueError(f"segment_ids: expected ids of {arch} ({', '.join(by_id)}), got {unknown}")
        found = [by_id[sid] for sid in wanted]
    entries: dict[str, Item] = {}
    for seg in found:
        entries.setdefault(seg.key, Item.of_segment(arch, seg))
    return list(entries.values())


def network_entry(arch: Arch | str) -> Item:
    """The whole network: key its architecture string, kind 'network' (pynas.store's convention)."""
    return Item.of_network(_resolve(arch))


def write_oplist(path: str | os.PathLike, entries: Iterable[Item], *, band_rows: int = 0) -> int:
    """Writes the entries and their recorded networks to `path` (via a temporary file and a rename,
    so `path` is never half written); returns how many. Keys must be distinct; a bad entry raises
    OpListError naming it and the field."""
    import pynas

    path = Path(path)
    lines = [f"{FORMAT} {VERSION}", f"# written by pynas {pynas.__version__}; format: cpp/profiling/oplist.h"]
    seen: set[str] = set()
    count = 0
    for i, entry in enumerate(entries):
        lines.extend(_entry_lines(i, entry, seen, band_rows))
        count += 1
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return count


def _entry_lines(index: int, entry: Item, seen: set[str], band_rows: int) -> list[str]:
    where = f"entries[{index}]"
    if not isinstance(entry, Item):
        raise OpListError(f"{where}: expected a pynas.space.catalogue.Item, got {entry!r}")
    try:
        arch = str(_resolve(entry.arch))  # a preset name becomes its canonical architecture string
    except ValueError as error:
        raise OpListError(f"{where}: field 'arch': {error}") from None
    for name, value in (("key", entry.key), ("kind", entry.kind), ("arch", arch)):
        if not isinstance(value, str) or not _NO_SPACE.fullmatch(value):
            raise OpListError(f"{where}: field {name!r}: expected a non-empty string without whitespace, got {value!r}")
    if entry.segment is not None and (not isinstance(entry.segment, str) or not _NO_SPACE.fullmatch(entry.segment)
                                      or entry.segment == "-"):
        raise OpListError(f"{where}: field 'segment': expected a segment id or None, got {entry.segment!r}")
    if entry.key in seen:
        raise OpListError(f"{where}: field 'key': expected each key once, {entry.key!r} repeats")
    seen.add(entry.key)
    if not isinstance(entry.features, Mapping):
        raise OpListError(f"{where}: field 'features': expected a JSON object, got {entry.features!r}")
    try:
        features = json.dumps(dict(entry.features), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise OpListError(f"{where}: field 'features': expected a JSON object of JSON values ({error})") from None
    try:
        steps = record_steps(entry.arch, entry.segment, band_rows=band_rows)
    except ValueError as error:
        raise OpListError(f"{where} ({entry.key}): {error}") from None
    head = f"entry key={entry.key} kind={entry.kind} arch={arch} segment={entry.segment or '-'}"
    return [head, f"features {features}"] + [step.line() for step in steps]


def read_oplist(path: str | os.PathLike) -> list[OpListRecord]:
    """The entries of an op list file with their steps. Checks the structure (header, entry,
    features, known steps with exactly their fields, integer values, act and gate names); the
    C++ reader also checks values and shapes (`pynas-profile FILE --check`)."""
    path = Path(path)
    records: list[OpListRecord] = []
    current: dict | None = None

    def fail(number: int, message: str) -> OpListError:
        return OpListError(f"{path}:{number}: {message}")

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise OpListError(f"{path}: cannot read ({error})") from None
    if text and not text.endswith("\n"):
        raise fail(text.count("\n") + 1, "expected the line to end with '\\n' (is the file cut off?)")
    lines = text.split("\n")[:-1]
    if not lines or lines[0].split() != [FORMAT, str(VERSION)]:
        raise fail(1, f"expected the header line '{FORMAT} {VERSION}'")
    for number, line in enumerate(lines[1:], start=2):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        word = tokens[0]
        if word == "entry":
            if current is not None:
                raise fail(number, f"expected the entry at line {current['line']} to end with 'output'")
            fields = _pairs(tokens[1:], number, fail)
            if set(fields) != {"key", "kind", "arch", "segment"}:
                raise fail(number, f"entry: expected fields key, kind, arch, segment, got {', '.join(fields)}")
            current = dict(fields, line=number, features=None, steps=[])
        elif word == "features":
            if current is None or current["features"] is not None or current["steps"]:
                raise fail(number, "expected 'features' only right after an 'entry' line")
            try:
                features = json.loads(line.split(None, 1)[1] if len(tokens) > 1 else "")
            except ValueError as error:
                raise fail(number, f"field 'features': expected a JSON object ({error})") from None
            if not isinstance(features, dict):
                raise fail(number, f"field 'features': expected a JSON object, got {features!r}")
            current["features"] = features
        elif word in STEP_FIELDS:
            if current is None or current["features"] is None:
                raise fail(number, f"{word}: expected an 'entry' and a 'features' line before the steps")
            fields = _pairs(tokens[1:], number, fail)
            allowed = STEP_FIELDS[word]
            unknown = [name for name in fields if name not in allowed]
            if unknown:
                raise fail(number, f"{word}: unknown field {unknown[0]!r} (expected {' '.join(allowed)})")
            values = {name: _value(word, name, fields[name], number, fail) for name in allowed if name in fields}
            current["steps"].append(Step(word, values))
            if word == "output":
                records.append(OpListRecord(current["key"], current["kind"], current["features"], current["arch"],
                                            None if current["segment"] == "-" else current["segment"],
                                            tuple(current["steps"]), current["line"]))
                current = None
        else:
            raise fail(number, f"unknown step {word!r}: expected one of entry, features, {', '.join(STEP_FIELDS)}")
    if current is not None:
        raise fail(len(lines), f"expected the entry at line {current['line']} to end with 'output'")
    return records


def _pairs(tokens: list[str], number: int, fail) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in tokens:
        name, eq, value = token.partition("=")
        if not eq or not name:
            raise fail(number, f"expected fields as name=value, got {token!r}")
        if name in out:
            raise fail(number, f"field {name!r} given twice")
        out[name] = value
    return out


def _value(step: str, name: str, text: str, number: int, fail) -> int | str:
    if name == "xs":
        if not re.fullmatch(r"\d+(,\d+)+", text):
            raise fail(number, f"{step}: field 'xs': expected two or more tensor ids separated by commas, got {text!r}")
        return text
    if name in _NAME_FIELDS:
        allowed = GATES if name in ("gate", "se_gate") else POOLS if name == "kind" else ACTS
        if text not in allowed:
            raise fail(number, f"{step}: field {name!r}: expected one of {', '.join(allowed)}, got {text!r}")
        return text
    if not re.fullmatch(r"-?\d+", text):
        raise fail(number, f"{step}: field {name!r}: expected an integer, got {text!r}")
    return int(text)


def _resolve(arch):
    """A block network (an Arch, its string or a preset name) or a cell network (a CellNet or its
    ``cellnet_...`` string)."""
    from pynas import cell

    if isinstance(arch, (Arch, cell.CellNet)):
        return arch
    if isinstance(arch, str) and cell.is_cellnet_string(arch):
        return cell.parse(arch)
    from pynas.presets import resolve

    return resolve(arch)
