"""The `zero-cost` evaluator: a proxy's score at initialisation, mapped to a percentile of the space.

    evaluator = make_evaluator("zero-cost:synflow", space)          # or ZeroCostEvaluator("synflow", space)
    outcome = evaluator.evaluate([Candidate(tokens, cell, text)])[0]
    outcome.accuracy   # 100 * Phi((s - mu) / sd): the architecture's estimated percentile in the space
    outcome.score      # s, the raw proxy score (for synflow, params, flops: its log, as below)

Proxies (`pynas.train.proxies`): synflow, naswot, jacob_cov, grad_norm, snip, and the baselines
params and flops. A proxy's score is no accuracy, but an Outcome's accuracy is a percentage, so it
reports the architecture's estimated percentile: with mu and sd the mean and standard deviation of
the proxy's score over a fixed seeded sample of 32 random architectures of the space (scored once,
when the evaluator is built: for NAS-Bench-201 about a minute for the slowest proxies on one core,
far more for MnasNet at 224), accuracy = 100 * Phi((s - mu) / sd), Phi the normal CDF. The
percentile keeps the proxy's ranking, which is all a search uses. Proxies whose scores span orders
of magnitude (synflow, params, flops) are compared as natural logs: s is log(score), and a score
<= 0 (no signal reaches the output) fails.

Each evaluation builds the network with a seeded initialisation (NAS-Bench-201 cells with
`pynas.train.nb201.build_nb201`, PyTorch's default init; MnasNet/FBNet archs with
`pynas.torch_builder.build_torch`) and scores one batch: Gaussian inputs at the space's resolution
and uniform labels by default (batch 64, seeded), or a given (x, y) tensor pair. Deterministic for
a seed. A non-finite score (NaN, inf: a cell whose input never reaches its output) is an Outcome
with an error, never an accuracy.
"""
from __future__ import annotations

import hashlib
import math
import time
from typing import Sequence

import numpy as np

from pynas.search.evaluators.base import Candidate, Evaluator, Outcome

PREFIX = "zero-cost"
PROXY_NAMES = ("synflow", "naswot", "jacob_cov", "grad_norm", "snip", "params", "flops")
LOG_SCALE = ("synflow", "params", "flops")  # as pynas.train.proxies.LOG_SCALE (not imported: torch is lazy)
CALIBRATION = 32  # random architectures whose scores give mu and sd
MIN_FINITE = 8  # of them, with a finite score, for mu and sd to mean anything


def parse_spec(spec: str) -> str:
    """The proxy of `zero-cost:PROXY` (ValueError naming what was expected)."""
    prefix, colon, proxy = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if prefix != PREFIX or not colon or proxy not in PROXY_NAMES:
        raise ValueError(f"evaluator: expected {PREFIX}:PROXY with PROXY one of {', '.join(PROXY_NAMES)}, got {spec!r}")
    return proxy


def _int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


class ZeroCostEvaluator(Evaluator):
    @classmethod
    def from_spec(cls, rest: str, space, *, batch: int = 64, seed: int = 0, data: str | None = None,
                  calibration: int = CALIBRATION) -> "ZeroCostEvaluator":
        """From what follows `zero-cost:` and the options (`--evaluator-option`): `data` a dataset
        (`pynas.data.load_dataset`: fashion-mnist, digits, a folder, an .npz) whose seeded first
        `batch` training images, resized to the space's resolution, replace the Gaussian inputs; grey
        images feed a 3-channel network replicated over the channels ("CIFAR-like")."""
        proxy = parse_spec(f"{PREFIX}:{rest}")
        pair = None
        if data is not None:
            pair = dataset_batch(data, space, _int("batch", batch, 2), _int("seed", seed, 0))
        return cls(proxy, space, batch=batch, seed=seed, data=pair, calibration=calibration,
                   data_name=None if data is None else data)

    def __init__(self, proxy: str, space, *, batch: int = 64, seed: int = 0, data=None,
                 calibration: int = CALIBRATION, data_name: str | None = None):
        """`data`: None (Gaussian inputs) or an (x, y) pair of tensors, x N x C x R x R float at the
        space's resolution, y N integer labels in [0, classes)."""
        if proxy not in PROXY_NAMES:
            raise ValueError(f"proxy: expected one of {', '.join(PROXY_NAMES)}, got {proxy!r}")
        if getattr(space, "name", None) not in ("nb201", "mnasnet", "fbnet"):
            raise ValueError(f"space: expected nb201, mnasnet or fbnet, got {getattr(space, 'name', space)!r}")
        self.batch, self.seed = _int("batch", batch, 2), _int("seed", seed, 0)
        self.calibration = _int("calibration", calibration, MIN_FINITE)
        import torch

        from pynas.train.proxies import PROXIES

        self.proxy, self.space, self.name = proxy, space, f"{PREFIX}:{proxy}"
        self.function = PROXIES[proxy]
        self.resolution = space.resolution
        self.num_classes = 10 if space.name == "nb201" else space.num_classes
        self.channels = getattr(space, "in_channels", 3)
        self.inputs, self.targets, self.data = self._batch(torch, data)
        if data_name is not None:
            self.data = f"{data_name} {self.data}"
        self.mu, self.sd = self._calibrate()

    def _batch(self, torch, data):
        shape = (self.channels, self.resolution, self.resolution)
        if data is None:
            g = torch.Generator().manual_seed(self.seed)
            x = torch.randn((self.batch, *shape), generator=g)
            return x, torch.randint(0, self.num_classes, (self.batch,), generator=g), "random"
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(f"data: expected an (x, y) pair of tensors, got {type(data).__name__}")
        x, y = data
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or tuple(x.shape[1:]) != shape \
                or len(x) < 2:
            raise ValueError(f"data: x: expected a float tensor N x {' x '.join(map(str, shape))} (N >= 2), got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        if not isinstance(y, torch.Tensor) or y.is_floating_point() or tuple(y.shape) != (len(x),) or \
                (len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes)):
            raise ValueError(f"data: y: expected {len(x)} integer labels in 0..{self.num_classes - 1}, got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        x, y = x.detach().float().contiguous(), y.detach().long().contiguous()
        digest = hashlib.sha256(x.numpy().tobytes() + y.numpy().tobytes()).hexdigest()
        self.batch = len(x)
        return x, y, f"sha256:{digest}"

    def _model(self, arch):
        import torch

        with torch.random.fork_rng(devices=[]):  # seeded init, the caller's RNG untouched
            torch.manual_seed(self.seed)
            if self.space.name == "nb201":
                from pynas.train.nb201 import build_nb201

                return build_nb201(arch, num_classes=self.num_classes)
            from pynas.torch_builder import build_torch

            return build_torch(arch)

    def _score(self, arch) -> float:
        """The proxy's score (log for the log-scale ones; -inf for a score <= 0), maybe not finite."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            value = float(self.function(self._model(arch), self.inputs, self.targets))
        if self.proxy in LOG_SCALE:
            return math.log(value) if value > 0 else -math.inf
        return value

    def _calibrate(self) -> tuple[float, float]:
        tokens = self.space.sample_tokens(self.calibration, seed=self.seed)
        scores = np.array([self._score(self.space.decode(row)) for row in tokens])
        finite = scores[np.isfinite(scores)]
        if len(finite) < MIN_FINITE or not finite.std(ddof=1) > 0:
            raise ValueError(f"{self.name}: calibration: expected finite, varying scores on at least {MIN_FINITE} of "
                             f"{self.calibration} random architectures of space {self.space.name}, got "
                             f"{len(finite)} finite (std {finite.std(ddof=1) if len(finite) > 1 else float('nan')})")
        return float(finite.mean()), float(finite.std(ddof=1))

    def percentile(self, score: float) -> float:
        """100 * Phi((score - mu) / sd), in [0, 100]."""
        return 50.0 * (1.0 + math.erf((score - self.mu) / (self.sd * math.sqrt(2.0))))

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Outcome]:
        outcomes = []
        for candidate in candidates:
            start = time.perf_counter()
            try:
                self.space.check_tokens(candidate.tokens)
                score = self._score(candidate.arch)
            except (ValueError, RuntimeError) as error:
                outcomes.append(Outcome(None, f"{self.name}: {type(error).__name__}: {error}"[:500],
                                        time.perf_counter() - start))
                continue
            seconds = time.perf_counter() - start
            if not math.isfinite(score):
                why = "a score <= 0" if self.proxy in LOG_SCALE and score == -math.inf else f"score {score}"
                outcomes.append(Outcome(None, f"{self.name}: {why} (not finite: no signal from input to output?)",
                                        seconds))
            else:
                outcomes.append(Outcome(self.percentile(score), None, seconds, score=score))
        return outcomes

    def fingerprint(self) -> dict:
        return {"evaluator": PREFIX, "proxy": self.proxy, "batch": self.batch, "seed": self.seed, "data": self.data,
                "calibration": self.calibration}

    def describe(self) -> str:
        scale = "log " if self.proxy in LOG_SCALE else ""
        inputs = "Gaussian inputs" if self.data == "random" else self.data.split(" sha256")[0] + " images"
        return (f"{self.name}: the {scale}score's percentile in space {self.space.name} (normal, mu {self.mu:.4g}, "
                f"sd {self.sd:.4g} over {self.calibration} random architectures), batch {self.batch} of "
                f"{inputs}, seed {self.seed}")


def dataset_batch(spec: str, space, batch: int, seed: int):
    """(x, y) tensors: `batch` images of dataset `spec` (a seeded draw from its training split),
    normalised per channel, resized to the space's resolution (bilinear), grey replicated to the
    network's channels where it takes more; labels folded into the network's classes."""
    import torch
    import torch.nn.functional as F

    from pynas.data import load_dataset

    data = load_dataset(spec, seed=seed)
    channels = getattr(space, "in_channels", 3)
    if data.channels not in (1, channels):
        raise ValueError(f"data {spec}: expected images of 1 or {channels} channels (the space's input), got "
                         f"{data.channels}")
    if batch > len(data.x_train):
        raise ValueError(f"batch: expected at most the {len(data.x_train)} training images of {spec}, got {batch}")
    rows = np.sort(np.random.default_rng(seed).choice(len(data.x_train), batch, replace=False))
    x = data.x_train[rows].astype(np.float32)
    if data.x_train.dtype == np.uint8:
        x /= 255.0
    mean, std = data.channel_stats()
    x = torch.from_numpy((x - mean[None, :, None, None]) / std[None, :, None, None])
    if x.shape[-2:] != (space.resolution, space.resolution):
        x = F.interpolate(x, size=(space.resolution, space.resolution), mode="bilinear", align_corners=False)
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1)
    classes = 10 if space.name == "nb201" else space.num_classes
    y = torch.from_numpy(data.y_train[rows] % classes)
    return x.contiguous(), y


__all__ = ["PROXY_NAMES", "ZeroCostEvaluator", "dataset_batch", "parse_spec"]
