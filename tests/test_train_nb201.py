"""NAS-Bench-201's network in PyTorch (pynas/train/nb201.py): parameter counts against the benchmark
for all 15,625 cells, the count without building against built modules, the cell's wiring."""
import numpy as np
import pytest
import torch

from pynas.space.nb201 import OPS, Cell, NB201Space, benchmark
from pynas.torch_cells import Cell as CellModule
from pynas.train.nb201 import build_nb201, count_params

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"  # index 1

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def sig6(x: float) -> float:
    return float(f"{x:.6g}")  # the shipped data's rounding: 6 significant digits


def test_params_equal_the_benchmark_s_for_all_cells_but_its_inconsistent_rows():
    data = benchmark()
    counts = np.array([count_params(Cell(tuple(OPS[t] for t in row))) for row in data.tokens])
    millions = np.array([sig6(c / 1e6) for c in counts])
    off = np.flatnonzero(millions != data.params)
    # 204 rows of the shipped data are off by exactly a third or two thirds of one or two edge ops' parameters
    # over the network (conv1x1: 28,000; conv3x3: 243,040): a mean over three records, one of another cell.
    assert len(off) == 204
    thirds = np.round(3 * (data.params[off] * 1e6 - counts[off]))
    explained = [any(abs(t - (a * 28000 + b * 243040)) <= 3 for a in range(-2, 3) for b in range(-2, 3)) for t in thirds]
    assert sum(explained) >= 199
    assert count_params(CELL) == 802426 and data.params[1] == 0.802426


def test_count_params_is_the_built_module_s():
    space = NB201Space()
    for row in space.sample_tokens(12, seed=4):
        cell = space.decode(row)
        assert sum(p.numel() for p in build_nb201(cell).parameters()) == count_params(cell), str(cell)
    small = build_nb201(CELL, num_classes=100, channels=8, cells_per_stage=2)
    assert sum(p.numel() for p in small.parameters()) == count_params(CELL, 100, 8, 2)


def test_forward_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    assert build_nb201(CELL)(x).shape == (2, 10)
    assert build_nb201(Cell.parse(CELL), num_classes=120, channels=4, cells_per_stage=1)(x).shape == (2, 120)


def test_cell_wiring_node_sums():
    ops = ["none"] * 6
    ops[0], ops[4], ops[3] = "skip_connect", "skip_connect", "skip_connect"  # 0->1, 1->3, 0->3: output 2x
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(CellModule(Cell(tuple(ops)).genotype(), 4)(x), 2 * x)
    ops[3] = "none"
    ops[5] = "skip_connect"  # 0->1->3 and 2->3, node 2 empty: x
    assert torch.equal(CellModule(Cell(tuple(ops)).genotype(), 4)(x), x)


def test_a_disconnected_cell_outputs_only_the_classifier_bias():
    torch.manual_seed(0)
    model = build_nb201("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|", channels=4, cells_per_stage=1)
    out = model(torch.randn(3, 3, 32, 32))
    assert torch.allclose(out, model.classifier.bias.expand(3, -1))


def test_bad_input():
    with pytest.raises(ValueError, match="num_classes: expected an integer >= 1, got 0"):
        build_nb201(CELL, num_classes=0)
    with pytest.raises(ValueError, match="channels: expected an integer >= 1, got True"):
        count_params(CELL, channels=True)
    with pytest.raises(ValueError, match="cell: expected a NAS-Bench-201 Cell or its string, got int"):
        build_nb201(5)
    with pytest.raises(ValueError, match="NAS-Bench-201 cell"):
        build_nb201("|conv~0|")
