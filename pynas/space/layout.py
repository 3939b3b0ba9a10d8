"""Table layouts: how a search space's token vector selects cells of a dense latency table.

A network's predicted latency is the sum of its segments' latencies (`pynas.ir.segments`: the stem,
every block repeat, the head) plus a per-network overhead. For a search, every segment any
architecture of a space can contain is priced once and stored in dense per-block tables, so a token
vector is priced by a few table reads (`pynas.predictor.table`, C++ `cpp/predictor/table.h`). The
layout is data, not code: one interpreter serves every space.

A `TableLayout` is a list of block slots, walked in order with a *state* (an integer naming what
the next block's input is, e.g. its channel count; `states` gives each a name). Per slot:

* ``chunk``: the mixed-radix index of the slot's `chunk_tokens` (first token most significant, as
  ``numpy.ravel_multi_index``): the block's choice.
* ``repeats``: ``repeats[value of repeats_token]``, or ``repeats[0]`` when `repeats_token` is None.
* latency: 0 when repeats == 0, else ``first[state][chunk] + (repeats - 1) * rest[chunk]`` (the
  first repeat sees the block's input; later repeats see the block's own output, so their cost
  does not depend on the state).
* next state: ``next_state[value of state_token]`` (``next_state[0]`` when `state_token` is None)
  when repeats > 0; a block with 0 repeats passes the state through unchanged.

After the last slot: ``+ head[state] + constant`` (segments every network has, e.g. the stem, plus
the per-network overhead).

Each token belongs to at most one slot, and the token vectors of a space are the whole product of
its decisions' choices, so the slots are independent and `reachable()` is exact: the cells some
token vector reads. Only those are priced; the others hold NaN.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from pynas.arch import Arch

TABLES = ("first", "rest", "head", "constant")
MAX_SLOT_COMBINATIONS = 2 ** 26


def _fail(field_name: str, expected: str, got) -> None:
    raise ValueError(f"{field_name}: expected {expected}, got {got!r}")


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class BlockSlot:
    """One block of the layout (see the module docstring for how it is evaluated).

    `stage` is the architecture stage the slot lowers to: its segments are ``s<stage>.0`` (first
    repeat, table ``first``) and ``s<stage>.<r>``, r >= 1 (later repeats, table ``rest``)."""

    name: str
    stage: int
    chunk_tokens: tuple[int, ...]
    repeats_token: int | None
    repeats: tuple[int, ...]
    state_token: int | None
    next_state: tuple[int, ...]

    def __post_init__(self):
        for name in ("chunk_tokens", "repeats", "next_state"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def tokens(self) -> tuple[int, ...]:
        """The distinct token indices the slot reads, in a fixed order."""
        extra = [t for t in (self.repeats_token, self.state_token) if t is not None]
        return tuple(dict.fromkeys([*self.chunk_tokens, *extra]))


@dataclass(frozen=True)
class Reachability:
    """The cells some token vector reads: `first[b]` the (state, chunk) pairs of slot b, `rest[b]`
    its chunks with more than one repeat, `head` the states the head can see."""

    first: tuple[frozenset[tuple[int, int]], ...]
    rest: tuple[frozenset[int], ...]
    head: frozenset[int]
    states_in: tuple[frozenset[int], ...]  # states each slot can see


@dataclass(frozen=True)
class SlotTrace:
    state: int  # the state the slot sees
    chunk: int
    repeats: int


@dataclass(frozen=True)
class TableLayout:
    """The structure of a space's latency table (module docstring). `space` identifies the space
    and every parameter that changes its segments (e.g. ``mnasnet_res224_cls1000``), so a table is
    never used with a space it was not compiled for."""

    space: str
    decision_names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    states: tuple[str, ...]
    initial_state: int
    blocks: tuple[BlockSlot, ...]

    def __post_init__(self):
        for name in ("decision_names", "cardinalities", "states", "blocks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        d, n_states = len(self.cardinalities), len(self.states)
        if not isinstance(self.space, str) or not self.space:
            _fail("layout.space", "a non-empty name of the space", self.space)
        if d == 0:
            _fail("layout.cardinalities", "at least one decision", self.cardinalities)
        for i, c in enumerate(self.cardinalities):
            if not _is_index(c) or c < 1:
                _fail(f"layout.cardinalities[{i}]", "an integer >= 1", c)
        if len(self.decision_names) != d or not all(isinstance(n, str) for n in self.decision_names):
            _fail("layout.decision_names", f"{d} names (one per cardinality)", self.decision_names)
        if n_states == 0 or not all(isinstance(s, str) for s in self.states):
            _fail("layout.states", "at least one state name", self.states)
        if not _is_index(self.initial_state) or not 0 <= self.initial_state < n_states:
            _fail("layout.initial_state", f"a state index in 0..{n_states - 1}", self.initial_state)
        if not self.blocks:
            _fail("layout.blocks", "at least one block slot", self.blocks)
        owner: dict[int, str] = {}
        for b, slot in enumerate(self.blocks):
            where = f"layout.blocks[{b}] ({slot.name})"
            if not isinstance(slot, BlockSlot):
                _fail(f"layout.blocks[{b}]", "a BlockSlot", slot)
            if not _is_index(slot.stage) or slot.stage < 0:
                _fail(f"{where}.stage", "an architecture stage index >= 0", slot.stage)
            if not slot.chunk_tokens:
                _fail(f"{where}.chunk_tokens", "at least one token index", slot.chunk_tokens)
            if len(set(slot.chunk_tokens)) != len(slot.chunk_tokens):
                _fail(f"{where}.chunk_tokens", "distinct token indices", slot.chunk_tokens)
            for name in ("chunk_tokens", "repeats_token", "state_token"):
                value = getattr(slot, name)
                for t in value if isinstance(value, tuple) else (() if value is None else (value,)):
                    if not _is_index(t) or not 0 <= t < d:
                        _fail(f"{where}.{name}", f"token indices in 0..{d - 1}", value)
            for name, token, fixed in (("repeats", slot.repeats_token, "repeats"),
                                       ("next_state", slot.state_token, "state")):
                values = getattr(slot, name)
                expected = 1 if token is None else self.cardinalities[token]
                if len(values) != expected:
                    what = f"one fixed {fixed}" if token is None else f"one per value of token {token}"
                    _fail(f"{where}.{name}", f"{expected} values ({what})", values)
            if not all(_is_index(r) and r >= 0 for r in slot.repeats):
                _fail(f"{where}.repeats", "integers >= 0", slot.repeats)
            if not all(_is_index(s) and 0 <= s < n_states for s in slot.next_state):
                _fail(f"{where}.next_state", f"state indices in 0..{n_states - 1}", slot.next_state)
            # The C++ table precomputes every combination of a slot's tokens (cpp/predictor/table.h).
            if math.prod(self.cardinalities[t] for t in slot.tokens()) > MAX_SLOT_COMBINATIONS:
                _fail(f"{where}", f"at most 2^26 combinations of its tokens {slot.tokens()}",
                      math.prod(self.cardinalities[t] for t in slot.tokens()))
            # One owner per token: blocks are then independent, which makes reachable() exact.
            for t in slot.tokens():
                if t in owner:
                    _fail(f"{where}", f"token {t} ({self.decision_names[t]}) in one slot only, it is also "
                          f"read by {owner[t]}", slot.tokens())
                owner[t] = slot.name

    def chunk_count(self, block: int) -> int:
        return math.prod(self.cardinalities[t] for t in self.blocks[block].chunk_tokens)

    def chunk_of(self, block: int, tokens: Sequence[int]) -> int:
        chunk = 0
        for t in self.blocks[block].chunk_tokens:
            chunk = chunk * self.cardinalities[t] + int(tokens[t])
        return chunk

    def check_tokens(self, tokens: Sequence[int]) -> tuple[int, ...]:
        tokens = tuple(int(t) for t in tokens)
        if len(tokens) != len(self.cardinalities):
            _fail("tokens", f"{len(self.cardinalities)} values (decisions of {self.space})", len(tokens))
        for i, (t, c) in enumerate(zip(tokens, self.cardinalities)):
            if not 0 <= t < c:
                _fail(f"tokens: decision {i} ({self.decision_names[i]})", f"a value in 0..{c - 1}", t)
        return tokens

    def trace(self, tokens: Sequence[int]) -> tuple[list[SlotTrace], int]:
        """What each slot reads for `tokens`, and the state the head sees: the reference semantics
        the C++ table implements."""
        tokens = self.check_tokens(tokens)
        state, out = self.initial_state, []
        for b, slot in enumerate(self.blocks):
            repeats = slot.repeats[0 if slot.repeats_token is None else tokens[slot.repeats_token]]
            out.append(SlotTrace(state, self.chunk_of(b, tokens), repeats))
            if repeats > 0:
                state = slot.next_state[0 if slot.state_token is None else tokens[slot.state_token]]
        return out, state

    def reachable(self) -> Reachability:
        """Every cell some token vector reads, walking the slots with the set of states that can
        reach each (every combination of a slot's own tokens, since slots share none)."""
        states = frozenset([self.initial_state])
        first, rest, states_in = [], [], []
        for slot in self.blocks:
            tokens = slot.tokens()
            position = {t: i for i, t in enumerate(tokens)}
            cells, later, after = set(), set(), set()
            for values in itertools.product(*(range(self.cardinalities[t]) for t in tokens)):
                chunk = 0
                for t in slot.chunk_tokens:
                    chunk = chunk * self.cardinalities[t] + values[position[t]]
                repeats = slot.repeats[0 if slot.repeats_token is None else values[position[slot.repeats_token]]]
                if repeats == 0:
                    after |= states
                    continue
                cells.update((s, chunk) for s in states)
                if repeats > 1:
                    later.add(chunk)
                after.add(slot.next_state[0 if slot.state_token is None else values[position[slot.state_token]]])
            states_in.append(states)
            first.append(frozenset(cells))
            rest.append(frozenset(later))
            states = frozenset(after)
        return Reachability(tuple(first), tuple(rest), states, tuple(states_in))

    def to_json(self) -> dict:
        return {"space": self.space, "decision_names": list(self.decision_names),
                "cardinalities": list(self.cardinalities), "states": list(self.states),
                "initial_state": self.initial_state,
                "blocks": [{"name": s.name, "stage": s.stage, "chunk_tokens": list(s.chunk_tokens),
                            "repeats_token": s.repeats_token, "repeats": list(s.repeats),
                            "state_token": s.state_token, "next_state": list(s.next_state)} for s in self.blocks]}

    @classmethod
    def from_json(cls, data: dict) -> "TableLayout":
        def need(obj, key, where):
            if not isinstance(obj, dict) or key not in obj:
                _fail(where, f"an object with key {key!r}", obj if not isinstance(obj, dict) else sorted(obj))
            return obj[key]

        blocks = need(data, "blocks", "layout")
        if not isinstance(blocks, list):
            _fail("layout.blocks", "a list", blocks)
        slots = tuple(BlockSlot(**{k: need(b, k, f"layout.blocks[{i}]") for k in (
            "name", "stage", "chunk_tokens", "repeats_token", "repeats", "state_token", "next_state")})
            for i, b in enumerate(blocks))
        return cls(space=need(data, "space", "layout"), decision_names=need(data, "decision_names", "layout"),
                   cardinalities=need(data, "cardinalities", "layout"), states=need(data, "states", "layout"),
                   initial_state=need(data, "initial_state", "layout"), blocks=slots)


@dataclass(frozen=True)
class TableCell:
    """Where one table cell's latency comes from: segment `segment` of `arch` (its key is priced).

    table ``first``: `block`, `state`, `chunk` set; ``rest``: `block`, `chunk`; ``head``: `state`;
    ``constant``: none (a segment every network has, e.g. the stem; summed into the constant).
    A ``first`` cell whose choice lowers to no op (an identity skip) has `segment` None: it has no
    segment to price (`compile_table`'s `empty` prices it, 0 ms by default)."""

    table: str
    arch: Arch
    segment: str | None
    block: int | None = None
    state: int | None = None
    chunk: int | None = None

    def where(self, layout: TableLayout) -> str:
        """The cell, named for error messages."""
        if self.table == "first":
            return (f"first[{layout.blocks[self.block].name}][state {self.state} "
                    f"({layout.states[self.state]})][chunk {self.chunk}]")
        if self.table == "rest":
            return f"rest[{layout.blocks[self.block].name}][chunk {self.chunk}]"
        if self.table == "head":
            return f"head[state {self.state} ({layout.states[self.state]})]"
        return f"constant ({self.segment})"


class TableSpec:
    """A layout and where every reachable cell's latency comes from (cells may repeat: all sources
    of one cell must give the same segment key, which the compiler checks). `cells` may be given
    as a function, run on first use: the layout alone is cheap (e.g. to check a saved table's
    space), the cells take decoding thousands of architectures."""

    def __init__(self, layout: TableLayout, cells: Iterable[TableCell] | Callable[[], Iterable[TableCell]]):
        if not isinstance(layout, TableLayout):
            _fail("layout", "a TableLayout", layout)
        self.layout = layout
        self._cells = cells

    @functools.cached_property
    def cells(self) -> tuple[TableCell, ...]:
        cells = tuple(self._cells() if callable(self._cells) else self._cells)
        for i, cell in enumerate(cells):
            if not isinstance(cell, TableCell) or cell.table not in TABLES:
                _fail(f"cells[{i}]", f"a TableCell of table {' | '.join(TABLES)}", cell)
        return cells

    def __repr__(self) -> str:
        return f"TableSpec({self.layout.space}, {len(self.layout.blocks)} blocks, {len(self.layout.states)} states)"
