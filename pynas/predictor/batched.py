"""The XGBoost path for many architectures at once, with no Python per architecture.

`BatchedModel(predictor, space).predict_batch(tokens)` walks the space's table layout
(`pynas.space.layout`) for all N token rows at once in numpy (the same semantics as
`TableLayout.trace` and the C++ table), collects the table cells the rows read, prices only the
distinct ones with the XGBoost model (one `inplace_predict` on their feature rows) and sums per
row. Unlike the compiled table nothing is priced ahead: the model is asked at query time, so a
model refitted during a search (adaptive sampling) is used at once, and spaces too large to
tabulate whole only price what the batch touches.

The cell -> segment features catalogue of a space is built once (lowering one architecture per
cell, as compiling a table does) and cached per space layout.
"""
from __future__ import annotations

import numpy as np

from pynas.predictor.features import feature_matrix
from pynas.space.catalogue import segment_by_id

_CATALOGUES: dict[str, tuple] = {}  # layout name (space + everything that changes its segments) -> catalogue


def _catalogue(space):
    """The space's layout, the cell-id offsets of its first/rest/head tables, and per cell id the
    segment kind ('' for a choice that lowers to no op) and features; then the constant segments."""
    key = space.table_layout().layout.space
    if key not in _CATALOGUES:
        _CATALOGUES[key] = _build_catalogue(space)
    return _CATALOGUES[key]


def _build_catalogue(space):
    spec = space.table_layout()
    layout = spec.layout
    n_states = len(layout.states)
    first_off, rest_off, offset = [], [], 0
    for b in range(len(layout.blocks)):
        first_off.append(offset)
        offset += n_states * layout.chunk_count(b)
    for b in range(len(layout.blocks)):
        rest_off.append(offset)
        offset += layout.chunk_count(b)
    head_off = offset
    size = offset + n_states
    kinds: list = [None] * size
    feats: list = [None] * size
    constants = []
    last, segs = None, {}
    for cell in spec.cells:
        if cell.arch is not last:
            last, segs = cell.arch, segment_by_id(cell.arch)
        seg = segs[cell.segment] if cell.segment is not None else None
        if cell.table == "constant":
            constants.append((seg.kind, seg.features()))
            continue
        if cell.table == "first":
            cid = first_off[cell.block] + cell.state * layout.chunk_count(cell.block) + cell.chunk
        elif cell.table == "rest":
            cid = rest_off[cell.block] + cell.chunk
        else:
            cid = head_off + cell.state
        if seg is not None:
            kinds[cid], feats[cid] = seg.kind, seg.features()
        else:
            kinds[cid] = ""  # a choice that lowers to no op: 0 ms
    return layout, first_off, rest_off, head_off, kinds, feats, constants


class SpaceCells:
    """Every cell of a space's table with its segment: per-cell values (a model's prices, weights)
    in, the table's first/rest/head arrays out (`arrays`), and their cheapest network (`cheapest`)."""

    def __init__(self, space):
        (self.layout, self.first_off, self.rest_off, self.head_off, kinds, feats, constants) = _catalogue(space)
        self.priced = [i for i, k in enumerate(kinds) if k]  # cells with a segment
        self.empty = [i for i, k in enumerate(kinds) if k == ""]  # choices that lower to no op: 0
        self.features = [feats[i] for i in self.priced]
        self.constant_features = [f for _, f in constants]

    def arrays(self, values: np.ndarray):
        """(first, rest, head) of the layout with `values` (one per `self.features`) in their cells."""
        flat = np.full(self.head_off + len(self.layout.states), np.nan)
        flat[self.priced] = values
        flat[self.empty] = 0.0
        n_states = len(self.layout.states)
        first = [flat[o:o + n_states * self.layout.chunk_count(b)].reshape(n_states, -1)
                 for b, o in enumerate(self.first_off)]
        rest = [flat[o:o + self.layout.chunk_count(b)] for b, o in enumerate(self.rest_off)]
        return first, rest, flat[self.head_off:]

    def cheapest(self, values: np.ndarray, constant_values: np.ndarray) -> float:
        """The least network total over the space, cells holding `values`, constants `constant_values`."""
        from pynas.predictor.table import cheapest_network

        return cheapest_network(self.layout, *self.arrays(values)) + float(np.sum(constant_values))


class BatchedModel:
    """An XGBoost bundle (`pynas.predictor.bundle.Predictor`) over the token rows of `space`."""

    def __init__(self, predictor, space):
        if getattr(predictor, "model", None) is None:
            raise ValueError(f"predictor: expected an XGBoost bundle, got {type(predictor).__name__}")
        self.predictor, self.space = predictor, space
        (self.layout, self.first_off, self.rest_off, self.head_off, kinds, feats, constants) = _catalogue(space)
        priced = [i for i, k in enumerate(kinds) if k]
        self.cell_rows = np.full(len(kinds), -1, dtype=np.int64)  # cell id -> row of self.x (-1: no op)
        self.cell_rows[priced] = np.arange(len(priced))
        caches = predictor.model.caches
        self.x = feature_matrix([feats[i] for i in priced], caches).astype(np.float32)
        kinds_priced, feats_priced = [kinds[i] for i in priced], [feats[i] for i in priced]
        self.scale, self.offset = predictor.segment_terms(kinds_priced, feats_priced)
        self.constant_ms = float(sum(predictor.segment_ms([k for k, _ in constants], [f for _, f in constants]))
                                 ) + predictor.overhead_ms

    def cells(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row index, cell id, count) of every cell the rows read: the layout's trace, vectorised."""
        layout = self.layout
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != len(layout.cardinalities):
            raise ValueError(f"tokens: expected an N x {len(layout.cardinalities)} integer array, got shape "
                             f"{tokens.shape}")
        if tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens: expected integers, got dtype {tokens.dtype}")
        card = np.asarray(layout.cardinalities)
        bad = (tokens < 0) | (tokens >= card)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            raise ValueError(f"tokens: row {row} decision {col} ({layout.decision_names[col]}): expected a value in "
                             f"0..{card[col] - 1}, got {tokens[row, col]}")
        n = len(tokens)
        rows = np.arange(n)
        state = np.full(n, layout.initial_state, dtype=np.int64)
        out_rows, out_cells, out_counts = [], [], []
        for b, slot in enumerate(layout.blocks):
            chunk = np.zeros(n, dtype=np.int64)
            for t in slot.chunk_tokens:
                chunk = chunk * card[t] + tokens[:, t]
            repeats = np.asarray(slot.repeats)[tokens[:, slot.repeats_token]] if slot.repeats_token is not None \
                else np.full(n, slot.repeats[0])
            on = repeats > 0
            out_rows.append(rows[on])
            out_cells.append(self.first_off[b] + state[on] * layout.chunk_count(b) + chunk[on])
            out_counts.append(np.ones(int(on.sum())))
            more = repeats > 1
            out_rows.append(rows[more])
            out_cells.append(self.rest_off[b] + chunk[more])
            out_counts.append((repeats[more] - 1).astype(np.float64))
            nxt = np.asarray(slot.next_state)[tokens[:, slot.state_token]] if slot.state_token is not None \
                else np.full(n, slot.next_state[0])
            state = np.where(on, nxt, state)
        out_rows.append(rows)
        out_cells.append(self.head_off + state)
        out_counts.append(np.ones(n))
        return np.concatenate(out_rows), np.concatenate(out_cells), np.concatenate(out_counts)

    def predict_batch(self, tokens: np.ndarray) -> np.ndarray:
        """Predicted ms (float64) of each token row; only the distinct cells the rows read are priced."""
        rows, cells, counts = self.cells(tokens)
        x_rows = self.cell_rows[cells]
        keep = x_rows >= 0  # -1: a choice that lowers to no op (an identity skip): 0 ms
        if not keep.all():
            rows, x_rows, counts = rows[keep], x_rows[keep], counts[keep]
        unique, inverse = np.unique(x_rows, return_inverse=True)
        ms = np.exp(self.predictor.model.booster.inplace_predict(self.x[unique])) * self.scale[unique] + \
            self.offset[unique]
        return np.bincount(rows, weights=ms[inverse] * counts, minlength=len(tokens)) + self.constant_ms
