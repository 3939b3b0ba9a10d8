"""`train:DATASET[:EPOCHS]`: proxy training on real data (`pynas.train.trainer`).

    evaluator = make_evaluator("train:fashion-mnist:5", space,
                               options={"resolution": 28, "width_mult": 0.5, "train_images": 10000})

Each candidate is trained from scratch for EPOCHS (default 5, MnasNet's proxy: enough to rank
architectures, far short of convergence) on DATASET (`pynas.data.load_dataset`: fashion-mnist,
digits, PATH.npz, a folder) and scored by top-1 on its validation split; `seconds` is that
evaluation's wall time. The proxy task (`pynas.train.proxy_task`): by default the architecture's
header is adapted to the data (its input channels and classes, resolution := option `resolution`
or the data's own, widths x `width_mult`), so a search of a 224 px RGB ImageNet-shaped space (whose
latency the bundle predicts) can use grey 28 px images as its accuracy proxy; `exact=True` adapts
nothing and fails a candidate whose header does not match the data.

Options (keyword-only; checked at construction, before any training): resolution, width_mult,
exact, threads (default 1: several evaluators share a machine; it is part of the fingerprint since
it changes float sums), batch_size (128), lr (0.05), train_images / val_images (seeded subsets of
the splits: cheaper, noisier proxies), seed (the data split, the subsets, and with each
architecture string its weights and batch order).
"""
from __future__ import annotations

import time
from typing import Sequence


from pynas.arch import Arch
from pynas.data import DatasetError, load_dataset
from pynas.search.evaluators.base import Candidate, Evaluator, Outcome
from pynas.train import proxy_task, trainer  # torch: this module is imported only for train: specs

PREFIX = "train"
DEFAULT_EPOCHS = 5  # MnasNet's proxy training (5 epochs on ImageNet), a rank signal not a final figure


def _int_option(name: str, value, low: int, none_ok: bool = True):
    if value is None and none_ok:
        return None
    return trainer.check_int(f"evaluator option {name}", value, low)


def _positive_option(name: str, value) -> float:
    return trainer.check_positive(f"evaluator option {name}", value)


def parse_spec(rest: str) -> tuple[str, int]:
    """'DATASET[:EPOCHS]' -> (dataset, epochs); the last ':' part is the epochs when there are two."""
    if not isinstance(rest, str) or not rest or rest.startswith(":"):
        raise ValueError(f"evaluator: expected {PREFIX}:DATASET[:EPOCHS], got {PREFIX}:{rest}")
    dataset, colon, epochs = rest.rpartition(":")
    if not colon:
        return rest, DEFAULT_EPOCHS
    if not epochs.isdigit() or int(epochs) < 1 or epochs != str(int(epochs)):
        raise ValueError(f"evaluator {PREFIX}:{rest}: EPOCHS: expected an integer >= 1, got {epochs!r}")
    return dataset, int(epochs)


class TrainEvaluator(Evaluator):
    name = PREFIX

    def __init__(self, dataset: str, epochs: int = DEFAULT_EPOCHS, *, resolution: int | None = None,
                 width_mult: float = 1.0, exact: bool = False, threads: int = 1, batch_size: int | None = None,
                 lr: float | None = None, train_images: int | None = None, val_images: int | None = None,
                 seed: int = 0):
        self.epochs = _int_option("epochs", epochs, 1, none_ok=False)
        self.resolution = _int_option("resolution", resolution, 1)
        self.width_mult = _positive_option("width_mult", width_mult)
        if not isinstance(exact, bool):
            raise ValueError(f"evaluator option exact: expected true or false, got {exact!r}")
        if exact and (self.resolution is not None or self.width_mult != 1.0):
            raise ValueError(f"evaluator option {'resolution' if self.resolution is not None else 'width_mult'}: "
                             f"expected none with exact=true (it adapts nothing), got "
                             f"{self.resolution if self.resolution is not None else width_mult!r}")
        self.exact = exact
        self.threads = _int_option("threads", threads, 1, none_ok=False)
        self.batch_size = trainer.DEFAULT_BATCH_SIZE if batch_size is None else _int_option("batch_size", batch_size, 1)
        self.lr = trainer.DEFAULT_LR if lr is None else _positive_option("lr", lr)
        self.train_images = _int_option("train_images", train_images, 2)
        self.val_images = _int_option("val_images", val_images, 1)
        self.seed = _int_option("seed", seed, 0, none_ok=False)
        self.data = load_dataset(dataset, self.seed)  # a DatasetError names a missing or bad dataset
        for name, wanted, have in (("train_images", self.train_images, len(self.data.x_train)),
                                   ("val_images", self.val_images, len(self.data.x_val))):
            if wanted is not None and wanted > have:
                raise ValueError(f"evaluator option {name}: expected at most {have} (the {self.data.name} split's "
                                 f"images), got {wanted}")
        if not exact and self.resolution is None and proxy_task.data_resolution(self.data) is None:
            h, w = self.data.resolution
            raise ValueError(f"evaluator option resolution: expected an integer (the images of {self.data.name} are "
                             f"{h}x{w}, not square), got none")
        self.dataset = dataset
        self.name = f"{PREFIX}:{dataset}:{self.epochs}"

    @classmethod
    def from_spec(cls, rest: str, space, *, resolution: int | None = None, width_mult: float = 1.0,
                  exact: bool = False, threads: int = 1, batch_size: int | None = None, lr: float | None = None,
                  train_images: int | None = None, val_images: int | None = None, seed: int = 0) -> "TrainEvaluator":
        """From what follows `train:` (DATASET[:EPOCHS]) and the options; `space` must decode to
        block architectures (MnasNet, FBNet), not NAS-Bench-201 cells."""
        dataset, epochs = parse_spec(rest)
        probe = space.decode(space.sample_tokens(1, seed=0)[0])
        if not isinstance(probe, Arch):
            raise ValueError(f"evaluator {PREFIX}:{rest}: space: expected one of block architectures (mnasnet, fbnet; "
                             f"nb201 cells have the nb201: table), got {space.name}")
        return cls(dataset, epochs, resolution=resolution, width_mult=width_mult, exact=exact, threads=threads,
                   batch_size=batch_size, lr=lr, train_images=train_images, val_images=val_images, seed=seed)

    def proxy(self, arch: Arch) -> Arch:
        """The architecture trained for `arch` (a DatasetError if exact and it does not fit)."""
        return proxy_task.adapt(arch, self.data, resolution=self.resolution, width_mult=self.width_mult, exact=self.exact)

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        """Each candidate trained in turn; a failure (a header that does not fit with exact, a
        diverged loss) is that candidate's Outcome with the reason, the others still train."""
        outcomes = []
        for candidate in candidates:
            start = time.perf_counter()
            try:
                if not isinstance(candidate.arch, Arch):
                    raise ValueError(f"expected a block architecture, got {type(candidate.arch).__name__}")
                score = trainer.train_and_score(self.proxy(candidate.arch), self.data, self.epochs, seed=self.seed,
                                    threads=self.threads, batch_size=self.batch_size, lr=self.lr,
                                    train_images=self.train_images, val_images=self.val_images)
                outcomes.append(Outcome(score.accuracy_percent, seconds=time.perf_counter() - start))
            except (DatasetError, trainer.TrainingError, ValueError, RuntimeError, MemoryError) as error:
                text = " ".join(str(error).split())
                outcomes.append(Outcome(None, error=f"{type(error).__name__}: {text}"[:500],
                                        seconds=time.perf_counter() - start))
        return outcomes

    def fingerprint(self) -> dict:
        import torch

        import pynas

        return {"evaluator": PREFIX, "dataset": self.data.name, "sha256": self.data.sha256, "epochs": self.epochs,
                "resolution": self.resolution, "width_mult": self.width_mult, "exact": self.exact,
                "threads": self.threads, "batch_size": self.batch_size, "lr": self.lr,
                "train_images": self.train_images, "val_images": self.val_images, "seed": self.seed,
                "recipe": dict(trainer.RECIPE), "pynas": pynas.__version__, "torch": torch.__version__}

    def describe(self) -> str:
        images = (f"{self.train_images or len(self.data.x_train)} training / "
                  f"{self.val_images or len(self.data.x_val)} validation images")
        task = proxy_task.describe(self.data, resolution=self.resolution, width_mult=self.width_mult, exact=self.exact)
        return (f"{self.name}: proxy training, {self.epochs} epoch{'s' if self.epochs != 1 else ''} on {self.data.name} ({images}), {task}; SGD "
                f"nesterov lr {self.lr:g} batch {self.batch_size}, cosine, {self.threads} thread(s), top-1 on validation")


__all__ = ["DEFAULT_EPOCHS", "TrainEvaluator", "parse_spec"]
