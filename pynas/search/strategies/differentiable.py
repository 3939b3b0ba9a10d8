"""`darts` and `proxyless`: differentiable search as strategies of the search loop.

    pynas search --space nb201 --predictor nb201-pixel3 --target-ms 6 --evaluator nb201:cifar10 --budget 20 \\
        --strategy darts --strategy-option epochs=8 --strategy-option latency_weight=0.2 --out runs/d
    pynas search --space mnasnet --predictor amd-epyc-avx2-native-c5f008 --target-ms 20 \\
        --evaluator zero-cost:naswot --budget 10 --strategy proxyless --strategy-option resolution=32 --out runs/p

Each `ask` trains the supernet (`pynas.train.darts`) for one epoch on its own data (option
`dataset`, default Fashion-MNIST: NAS-Bench-201 cells are trained on it as a proxy for CIFAR, which
is not on this machine) and returns the derived architecture (the argmax of the alphas), which the
loop prices with the run's latency model, evaluates with the run's evaluator and logs as a sample:
summary.json, best.txt, the report, verification and refinement work as for any strategy. What the
loop's evaluator answers is logged but not learnt from (a differentiable search learns only from
its supernet); the supernet's own accuracy of each derived path, the epoch's losses, E[LAT] and
the alphas' probabilities are in the strategy's state (`history`). The latency term is priced
before each epoch from the run's latency model around the current argmax (`price_table`), with
the run's T as its target.

The state (the log's, saved in the transaction that marks each step told) holds the supernet's
tensors, both optimisers' buffers and the epoch count as numpy arrays (npz, never pickle): a
killed run resumes from its last epoch, and the epoch it was in is trained again to the same
result (the data order and path samples come from generators seeded by (seed, epoch); the same
thread count gives the same floats). After `epochs` epochs (or at the skip limit) the strategy is
`finished`: the loop stops with reason "strategy". Asked for n > 1 rows, it returns the argmax
and then the architectures one decision away from it, most probable first.

`darts`: DARTS over `nb201` (first or second order, `order`); `proxyless`: ProxylessNAS's
binarised paths over `mnasnet` (or `nb201`). Options (KEY=VALUE): see `OPTIONS`.
"""
from __future__ import annotations

import math

import numpy as np

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy
from pynas.search.strategies.random import check_n, check_told

# name -> (default, kind, what it is); kinds: int, float, str, or a tuple of allowed values
OPTIONS = {
    "epochs": (10, "int", "supernet epochs (one per ask)"),
    "dataset": ("fashion-mnist", "str", "what the supernet trains on (pynas.data: fashion-mnist, digits, a folder, a .npz)"),
    "data_seed": (0, "int", "the dataset's split seed"),
    "train_images": (2000, "int", "training images the weights learn from"),
    "val_images": (2000, "int", "other training images the alphas learn from (DARTS's second half)"),
    "eval_images": (1000, "int", "validation images the supernet's accuracy of the derived path is taken on"),
    "resolution": (0, "int", "input size (0: the data's for nb201, the space's for mnasnet)"),
    "channels": (16, "int", "nb201: the first stage's width (the benchmark's 16)"),
    "cells_per_stage": (1, "int", "nb201: cells per stage in the search (the benchmark's 5)"),
    "batch": (64, "int", "images per step"),
    "order": (1, (1, 2), "DARTS: 1 first-order, 2 second-order"),
    "lr": (0.025, "float", "weights' SGD learning rate (cosine to 0.001)"),
    "arch_lr": (0.0, "float", "alphas' Adam learning rate (0: 3e-4 DARTS, 6e-3 ProxylessNAS)"),
    "latency_weight": (0.05, "float", "lambda of the latency term (0: none)"),
    "latency_form": ("absolute", ("absolute", "additive", "multiplicative"),
                     "lambda |E/T - 1|, lambda (E/T - 1), or a factor (E/T)^lambda (pynas.train.darts)"),
    "remedy": ("none", ("none", "darts-minus", "skip-limit"), "DARTS's skip collapse: DARTS-'s auxiliary skip, or stop at max_skips"),
    "max_skips": (2, "int", "skip-limit: stop once the derived cell has more skip edges"),
    "warmup_epochs": (0, "int", "epochs training only the weights"),
    "exclude_none": (False, "bool", "nb201: leave the none op out of the search (DARTS's own rule; the benchmark's "
                                    "DARTS keeps it)"),
    "paths_per_step": (2, "int", "proxyless: paths sampled per alpha step (REINFORCE with their mean as baseline)"),
    "threads": (1, "int", "torch threads (results are reproducible for a thread count)"),
}
_DATASETS: dict = {}  # (spec, split seed) -> Dataset: a strategy is built twice per run (checked, then run)
SPACES = {"darts": ("nb201",), "proxyless": ("mnasnet", "nb201")}


def _option(strategy: str, name: str, value):
    default, kind, _ = OPTIONS[name]
    if isinstance(kind, tuple):
        if value not in kind or isinstance(value, bool):
            raise ValueError(f"strategy {strategy}: option {name}: expected one of {', '.join(map(str, kind))}, "
                             f"got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"strategy {strategy}: option {name}: expected true or false, got {value!r}")
        return bool(value)
    if kind == "int":
        low = 0 if name in ("data_seed", "resolution", "warmup_epochs", "max_skips") else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"strategy {strategy}: option {name}: expected an integer >= {low}, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                or (name == "lr" and value == 0):
            raise ValueError(f"strategy {strategy}: option {name}: expected a number {'> 0' if name == 'lr' else '>= 0'}, "
                             f"got {value!r}")
        return float(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"strategy {strategy}: option {name}: expected a non-empty string, got {value!r}")
    return value


class Differentiable(Strategy):
    batch_size = 1
    kind = ""

    def __init__(self, problem: Problem, seed: int = 0, **options):
        unknown = [k for k in options if k not in OPTIONS]
        if unknown:
            raise ValueError(f"strategy {self.name}: unknown option {unknown[0]!r}, expected one of {', '.join(OPTIONS)}")
        self.problem, self.seed = problem, seed
        self.options = {k: _option(self.name, k, options.get(k, d)) for k, (d, _, _) in OPTIONS.items()}
        space = getattr(problem, "space", None)
        if space is None:
            raise ValueError(f"strategy {self.name}: expected a problem with its space (the search loop's), got none")
        if space.name not in SPACES[self.name]:
            raise ValueError(f"strategy {self.name}: space: expected {' or '.join(SPACES[self.name])}, got {space.name}"
                             + (" (use --strategy proxyless)" if space.name == "mnasnet" else ""))
        o = self.options
        if self.name == "proxyless" and o["order"] != 1:
            raise ValueError(f"strategy proxyless: option order: expected 1 (paths get REINFORCE gradients), got {o['order']}")
        if self.name == "proxyless" and o["remedy"] == "darts-minus":
            raise ValueError("strategy proxyless: option remedy: expected none or skip-limit (darts-minus is for cells)")
        if o["warmup_epochs"] >= o["epochs"]:
            raise ValueError(f"strategy {self.name}: option warmup_epochs: expected fewer than epochs ({o['epochs']}), "
                             f"got {o['warmup_epochs']}")
        self.space = space
        self._data, self._resolution = self._checked_data()
        if o["exclude_none"] and space.name != "nb201":
            raise ValueError(f"strategy {self.name}: option exclude_none: expected false for {space.name} (it is a "
                             f"cell space's op)")
        self.epoch, self.finished, self.history = 0, False, []
        self._search = None
        self._choices = None  # nb201 without none: the space's token of each supernet choice

    def _checked_data(self):
        """The dataset (loaded once per process) and the input size, checked against the options and
        the space: before the run's log exists."""
        from pynas.data import load_dataset

        o = self.options
        key = (o["dataset"], o["data_seed"])
        if key not in _DATASETS:
            _DATASETS[key] = load_dataset(o["dataset"], seed=o["data_seed"])
        data = _DATASETS[key]
        if o["train_images"] + o["val_images"] > len(data.x_train):
            raise ValueError(f"strategy {self.name}: options train_images + val_images: expected at most "
                             f"{len(data.x_train)} (the training split of {data.name}), got "
                             f"{o['train_images'] + o['val_images']}")
        if o["eval_images"] > len(data.x_val):
            raise ValueError(f"strategy {self.name}: option eval_images: expected at most {len(data.x_val)} (the "
                             f"validation split of {data.name}), got {o['eval_images']}")
        if self.space.name == "nb201":
            resolution = o["resolution"] or data.resolution[0]
            if resolution % 4:
                raise ValueError(f"strategy {self.name}: option resolution: expected a multiple of 4 (two stride-2 "
                                 f"reductions), got {resolution}" + ("" if o["resolution"] else
                                                                      " (the data's: set resolution=...)"))
            return data, resolution
        return data, o["resolution"] or self.space.resolution

    # -- building (lazily: `configure` builds the strategy once only to check its options) -----------
    def _setup(self):
        if self._search is not None:
            return
        import torch

        from pynas.train.darts import BilevelSearch, CellPathSupernet, CellSupernet, PathSupernet
        from pynas.train.trainer import prepared

        o = self.options
        torch.set_num_threads(o["threads"])
        data, resolution = self._data, self._resolution
        # Modules initialise from torch's global generator: seeded here, and restored after.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            if self.space.name == "nb201":
                from pynas.space.nb201 import OPS

                ops = OPS[1:] if o["exclude_none"] else OPS
                net = CellSupernet(data.num_classes, data.channels, o["channels"], o["cells_per_stage"], ops=ops,
                                   generator=generator)
                self._choices = np.array([OPS.index(op) for op in ops])
                if self.name == "proxyless":
                    net = CellPathSupernet(net, generator)
            else:
                from pynas.train.supernet_layers import Supernet

                # The supernet takes the data's classes and channels (a proxy task, as the train evaluator's):
                # the same decisions and tokens, only the stem's input and the classifier differ from the
                # networks the latency model prices.
                proxy = type(self.space)(**{**self.space.options(), "num_classes": data.num_classes,
                                            "in_channels": data.channels})
                net = PathSupernet(Supernet(proxy), self.space.cardinalities, generator)
        order = np.random.default_rng([self.seed, o["data_seed"]]).permutation(len(data.x_train))
        self._train = prepared(data, "train", resolution, np.sort(order[:o["train_images"]]))
        self._val = prepared(data, "train", resolution, np.sort(order[o["train_images"]:o["train_images"] + o["val_images"]]))
        held = np.sort(np.random.default_rng([self.seed, 1]).permutation(len(data.x_val))[:o["eval_images"]])
        self._eval = prepared(data, "val", resolution, held)
        self._search = BilevelSearch(net, epochs=o["epochs"], order=o["order"], lr=o["lr"], remedy=o["remedy"] if
                                     o["remedy"] != "skip-limit" else "none", warmup_epochs=o["warmup_epochs"],
                                     paths_per_step=o["paths_per_step"], arch_lr=o["arch_lr"] or None)

    @property
    def net(self):
        self._setup()
        return self._search.net

    # -- ask / tell ---------------------------------------------------------------------------------
    def ask(self, n: int) -> np.ndarray:
        n = check_n(n)
        self._setup()
        if not self.finished:
            self._train_epoch()
        kept = self.history[-1]["tokens"] if self.history else self._tokens(self.net.derive())
        return self._rows(tuple(kept), n)

    def _tokens(self, choices) -> list[int]:
        """The space's tokens of supernet choice indices (the same unless `none` is left out)."""
        choices = np.asarray(choices, dtype=np.int64)
        return (choices if self._choices is None else self._choices[choices]).tolist()

    def _latency(self, choices: np.ndarray) -> np.ndarray:
        return self.problem.latency(np.asarray(choices) if self._choices is None else self._choices[choices])

    def _train_epoch(self) -> None:
        import torch

        from pynas.train.darts import LatencyLoss, price_table, skip_count

        o, search = self.options, self._search
        latency = None
        if o["latency_weight"] > 0:
            base, prices = price_table(self._latency, search.net.derive(), search.net.cardinalities)
            latency = LatencyLoss(base, prices, self.problem.target_ms, o["latency_weight"], o["latency_form"])
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0]))
        losses = search.epoch(self.epoch, self._train, self._val, batch_size=o["batch"], generator=generator,
                              latency=latency)
        derived = search.net.derive()
        tokens = self._tokens(derived)
        entry = {"epoch": self.epoch, "tokens": tokens,
                 "latency_ms": float(self.problem.latency(np.array([tokens], dtype=np.int64))[0]),
                 "supernet_accuracy": search.path_accuracy(derived, *self._eval),
                 "probabilities": np.round(search.net.probabilities().detach().numpy(), 6).tolist(),
                 **{k: (None if not math.isfinite(v) else v) for k, v in losses.items()}}
        if self.space.name == "nb201":
            entry["skips"] = skip_count(tokens)
        self.epoch += 1
        if o["remedy"] == "skip-limit" and entry["skips"] > o["max_skips"] and self.history:
            entry["stopped"] = f"skip-limit: {entry['skips']} skip edges > {o['max_skips']}; the previous cell kept"
            entry["tokens"] = self.history[-1]["tokens"]
            self.finished = True
        self.history.append(entry)
        if self.epoch >= o["epochs"]:
            self.finished = True

    def _rows(self, kept: tuple[int, ...], n: int) -> np.ndarray:
        rows = [kept]
        if n > 1:
            probs = self.net.probabilities().detach().numpy()
            index = {int(t): j for j, t in enumerate(self._choices)} if self._choices is not None else None
            at = [k if index is None else index[k] for k in kept]
            flips = sorted(((float(np.log(probs[i, at[i]]) - np.log(max(probs[i, j], 1e-30))), i, j)
                            for i, count in enumerate(self.net.cardinalities) for j in range(count) if j != at[i]))
            for _, i, j in flips[:n - 1]:
                row = list(kept)
                row[i] = self._tokens([j])[0]
                rows.append(tuple(row))
            while len(rows) < n:  # a space of fewer neighbours than asked: repeats (answered from the cache)
                rows.append(kept)
        return np.array(rows, dtype=np.int64)

    def tell(self, tokens, accuracy, latency_ms, reward) -> None:
        tokens, reward = check_told(self.problem, tokens, accuracy, latency_ms, reward)
        if self.history:
            accuracy = np.asarray(accuracy, dtype=np.float64).reshape(-1)
            self.history[-1]["evaluated_accuracy"] = None if not math.isfinite(accuracy[0]) else float(accuracy[0])

    # -- state --------------------------------------------------------------------------------------
    def get_state(self) -> State:
        values = {"epoch": self.epoch, "finished": self.finished, "history": self.history}
        return State(values, self._search.state_arrays() if self._search is not None else {})

    def set_state(self, state: State) -> None:
        for key in ("epoch", "finished", "history"):
            if key not in state.values:
                raise ValueError(f"strategy {self.name} state: expected {key!r}, got keys {sorted(state.values)}")
        self.epoch, self.finished = int(state.values["epoch"]), bool(state.values["finished"])
        self.history = list(state.values["history"])
        if state.arrays:
            self._setup()
            self._search.load_state_arrays(state.arrays)


class Darts(Differentiable):
    name = "darts"
    summary = "DARTS (first/second order) over nb201 cells with a latency loss; one supernet epoch per ask"


class Proxyless(Differentiable):
    name = "proxyless"
    summary = "ProxylessNAS binarised paths (REINFORCE alphas) over mnasnet or nb201 with a latency loss"
