"""`rl`: MnasNet's RL controller (an LSTM policy trained by PPO) and TuNAS's independent logits, asking
only architectures that the latency model prices inside a band under the target.

Plain policy-gradient RL needs thousands of samples (MnasNet: 8,000); a search here gets 100-500
accuracy evaluations. So the policy proposes, and the strategy chooses which proposals to evaluate,
using the two free signals it has: the latency model and its own memory of what was told.

ask(n)
1. Propose. The policy draws token vectors decision by decision. `policy="lstm"` (default; MnasNet,
   after NASNet/ENAS): one LSTM layer of `hidden`=64 units steps through the decisions in order, its
   input the embedding of the previous choice, a softmax head per decision sized to its choices.
   `policy="independent"` (also registered as `rl-independent`; TuNAS): one logit vector per decision.
   Draws use the strategy's numpy generator; torch draws no random numbers.
2. Screen. A draw passes when the latency model puts it in the band [low, high] x T and it was never
   told (nor taken earlier in this ask). `band="auto"`: high = 1 (the run returns its best under T, so
   a slower architecture is a wasted evaluation); low = where the reward's latency term costs one
   point of accuracy: 0.9 for the absolute reward (beta = -0.10), 0 for MnasNet's rewards (they never
   penalise being faster than T). `band="none"` or `[low, high]` otherwise; `fresh=False` allows
   repeats (the loop answers them from its cache, but they teach nothing new).
3. Choose (absolute reward only). The policy draws `oversample`=4 times the passing rows needed and
   the strategy asks those with the best latency term, i.e. the closest to T. The proposals are
   interchangeable under the policy's belief about their accuracy; the latency term is known exactly.
   MnasNet's rewards multiply the accuracy by their latency factor, which cannot be ranked apart
   from the accuracy: there every passing draw is taken in order.
4. Fall back. The policy's draws are capped at 32 per row asked (its compute budget). What it cannot
   fill comes from uniform draws under the same screen and choice, then from fresh rows outside the
   band (the band exhausted: with T at the Pixel 3's 25% quantile of NAS-Bench-201 only 246
   architectures lie in [0.9, 1] x T), a repeat only when every architecture was told.

tell(...) and learning
- A failed evaluation (NaN) is remembered, so not asked again, and never learnt from.
- Every `batch_size`=20 told rows, one update. `algorithm="ppo"` (default; MnasNet): the clipped
  objective (`clip`=0.2), `epochs`=3 passes over the batch; `"reinforce"`: one step with an
  exponential-moving-average baseline (`baseline_decay`=0.95, per sample, as MnasNet and ENAS). Both
  add `entropy`=0.05 x the policy's entropy (summed over decisions) and use Adam, `lr` 0.01 for the
  LSTM (its shared weights move every decision at once) and 0.05 for independent logits.
- Advantages. PPO standardises the batch's rewards: minus their mean, over their standard
  deviation. The mean is the right baseline under the screen: the strategy samples from the policy
  restricted to the passing set F, and the gradient of the expected reward of that restricted policy
  is exactly E_F[(R - E_F[R]) grad log pi]; the normaliser's own gradient is what the batch mean
  removes. The standard deviation makes the step independent of the reward's units (percent or
  fraction, additive or multiplicative) and of how close the rewards get late in a search.
  REINFORCE divides by the moving RMS of (reward - baseline) for the same reason.
- The screen's signal. Rejected draws are never evaluated, so the rewards say nothing about them;
  left alone, the policy drifts where accuracy is higher, i.e. out of the band (slower), or onto
  architectures already told, and its draws stop passing. Each update therefore adds one
  policy-gradient step on the policy's own last `band_rows`=32 draws, scored 0 outside the band, 1
  inside, 2 inside and never told (standardised, weight `band_weight`=1). It costs no evaluation.

State: the policy's weights, Adam's moments and step count, the REINFORCE baseline and spread, the
numpy generator, every row told, the rows told since the last update, the draws kept
for the screen's signal and the acceptance estimates: JSON values and float32/int64/float64 arrays.
torch runs on one thread inside the strategy (`controller.one_thread`), so a resumed search
computes the same numbers whatever the caller's thread setting.

NAS-Bench-201, ImageNet16-120 (the search sees the 12-epoch validation accuracy, is scored on the
200-epoch test accuracy of its best-by-proxy architecture under T), default options, absolute reward,
T at the 25% latency quantile; mean regret in points over 100 seeds (random-feasible: 1,000 seeds);
the floor is what evaluating every architecture under T returns:

                          Pixel 3 (T 6.44 ms)     FPGA (T 2.91 ms)     in [0.9, 1] x T
    evaluations             100    200    500      100    200    500     (at 200: pixel3, fpga)
    rl (default)            0.14   0.00   0.00     0.63   0.39   0.27     100%, 100%
    rl-independent (50)     0.02   0.00   0.00     0.70   0.51   0.27     100%, 100%
    rl reinforce (50)       0.14   0.00   0.00     0.75   0.54   0.33     100%, 100%
    random-feasible         2.24   1.74   1.39     1.46   0.93   0.66      41%,  98%
    floor                   0.00                   0.22

    (seeds 100 unless in brackets; standard errors <= 0.05 at 100 and 200 evaluations, <= 0.03 at 500)

What the parts contribute. The screen alone (a policy that does not learn, lr 1e-9) does as well on
the Pixel 3 (0.09, 0.00, 0.00: its band holds 246 architectures, and the choice closest to T finds the
best of them at once) but not on the FPGA (0.73, 0.53, 0.35: 1,420 in the band, where learning which
operations pay takes the regret at 200 from 0.53 to 0.39). The policy without the band, with only the
fresh screen (MnasNet's setting, the reward alone steering it to T; 20 seeds): 2.47, 1.19, 0.43 on the
Pixel 3 and 2.69, 0.87, 0.84 on the FPGA, no better than uniform sampling under T at these budgets.

Limits. The band is the absolute reward's own preference (one point of accuracy per 10% below T),
not the benchmark's: with T at the 50% quantile (50 seeds) the best architectures by proxy on the
Pixel 3 lie at 0.7-0.8 x T, and rl returns the best in the band, regret
0.77 at 200 and 0.80 at 500 where the floor is 0.155 (random-feasible 1.94, 1.37); on the FPGA it
finds the top few by proxy but the proxy's second and third best are 2 points worse on test, regret
1.49 at 200 and 500 (floor 0.68, random-feasible 1.84, 1.49). The choice closest to T paid at the 25%
quantile because there the best architectures use the whole budget (all at exactly T on the FPGA);
`oversample=1` turns it off (FPGA, 40 seeds: 0.64, 0.49, 0.35). With MnasNet's soft reward the band
is [0, 1] x T and no choice is made: regret 0.80 / 0.85 at 200 and 0.17 / 0.51 at 500 (Pixel 3 /
FPGA, 50 seeds), the returned architecture in [0.9, 1] x T in 54% / 98% of runs at 200.

Cost: 0.72 ms of controller work per sample (sampling, screening and the update, amortised over 500
samples; one core of this machine's AMD EPYC, CPU time): about 0.25 ms to ask and 0.47 ms for the PPO
update (3 epochs of an LSTM's forward and backward over 20 rows). rl-independent 0.18-0.27 ms,
REINFORCE 0.37-0.41 ms. The first strategy built imports torch (seconds, once).
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

from pynas.search.problem import Problem
from pynas.search.strategies.base import State, Strategy, restore_rng, rng_state
from pynas.search.strategies.controller import Adam, IndependentPolicy, LSTMPolicy, one_thread

ALGORITHMS = ("ppo", "reinforce")
POLICIES = ("lstm", "independent")
DEFAULTS = dict(algorithm="ppo", policy="lstm", hidden=64, lr="auto", entropy=0.05, clip=0.2, epochs=3,
                batch_size=20, baseline_decay=0.95, band="auto", fresh=True, oversample=4, band_weight=1.0,
                band_rows=32)
POLICY_DRAWS = 32       # policy samples drawn (and priced) at most per row asked
MAX_UNIFORM = 16384     # uniform samples priced at most per round of the fallback
FALLBACK_ROUNDS = 2     # rounds per fallback stage


def _number(name, value, low, high, *, integer=False, low_open=False, high_open=False):
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        ok = above and below
    if not ok:
        left, right = ("(" if low_open else "["), (")" if high_open else "]")
        span = f"{left}{low:g}, {'inf' if high is None else format(high, 'g')}{right}"
        raise ValueError(f"{name}: expected {kind} in {span}, got {value!r}")
    return int(value) if integer else float(value)


def _band(band, problem: Problem) -> tuple[float, float]:
    """The screening band of LAT/T, from the option (see the module docstring for 'auto')."""
    if band == "auto":
        reward = problem.reward
        if reward.kind == "absolute" and reward.beta < 0:
            # The lowest ratio whose latency term costs at most one point of accuracy.
            return max(0.0, 1.0 - 1.0 / (100.0 * abs(reward.beta))), 1.0
        return 0.0, 1.0  # MnasNet's rewards never penalise being faster than T
    if band == "none":
        return 0.0, math.inf
    if (isinstance(band, (list, tuple)) and len(band) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band)
            and 0 <= band[0] < band[1] and not math.isnan(band[1])):
        return float(band[0]), float(band[1])
    raise ValueError("rl option band: expected 'auto', 'none' or [low, high] ratios of T with 0 <= low < high, "
                     f"got {band!r}")


class RLStrategy(Strategy):
    name = "rl"
    summary = ("MnasNet's controller: an LSTM policy trained by PPO (or REINFORCE); asks its fresh samples "
               "that the latency model puts in a band under T")
    default_policy = "lstm"

    def __init__(self, problem: Problem, seed: int = 0, **options):
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"strategy {self.name}: unknown option {unknown[0]!r} "
                             f"(expected one of {', '.join(DEFAULTS)})")
        o = {**DEFAULTS, "policy": self.default_policy, **options}
        if o["algorithm"] not in ALGORITHMS:
            raise ValueError(f"rl option algorithm: expected one of {', '.join(ALGORITHMS)}, got {o['algorithm']!r}")
        if o["policy"] not in POLICIES:
            raise ValueError(f"rl option policy: expected one of {', '.join(POLICIES)}, got {o['policy']!r}")
        o["hidden"] = _number("rl option hidden", o["hidden"], 1, 4096, integer=True)
        if o["lr"] == "auto":   # the LSTM's shared weights move every decision at once: a smaller step
            o["lr"] = 0.01 if o["policy"] == "lstm" else 0.05
        o["lr"] = _number("rl option lr", o["lr"], 0, 10, low_open=True)
        o["entropy"] = _number("rl option entropy", o["entropy"], 0, None)
        o["clip"] = _number("rl option clip", o["clip"], 0, 1, low_open=True, high_open=True)
        o["epochs"] = _number("rl option epochs", o["epochs"], 1, 1000, integer=True)
        o["batch_size"] = _number("rl option batch_size", o["batch_size"], 1, 100000, integer=True)
        o["baseline_decay"] = _number("rl option baseline_decay", o["baseline_decay"], 0, 1, high_open=True)
        o["oversample"] = _number("rl option oversample", o["oversample"], 1, 1000, integer=True)
        o["band_weight"] = _number("rl option band_weight", o["band_weight"], 0, None)
        o["band_rows"] = _number("rl option band_rows", o["band_rows"], 0, 1000000, integer=True)
        if not isinstance(o["fresh"], bool):
            raise ValueError(f"rl option fresh: expected true or false, got {o['fresh']!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
        self.problem, self.seed, self.options = problem, int(seed), o
        self.low, self.high = _band(o["band"], problem)
        # Choosing among the passing draws by the latency term: the absolute reward only (MnasNet's
        # multiply the accuracy by their latency factor, which cannot be ranked apart from it).
        self.pick = o["oversample"] > 1 and problem.reward.kind == "absolute"
        self.batch_size = o["batch_size"]
        self.cards = np.asarray(problem.cardinalities, dtype=np.int64)
        if self.cards.ndim != 1 or len(self.cards) == 0 or (self.cards < 1).any():
            raise ValueError("problem cardinalities: expected at least one decision, each >= 1, "
                             f"got {problem.cardinalities!r}")
        self.rng = np.random.default_rng([self.seed, 0x524C])
        init_rng = np.random.default_rng([self.seed, 0x494E4954])
        with one_thread():
            if o["policy"] == "lstm":
                self.policy = LSTMPolicy(problem.cardinalities, o["hidden"], init_rng)
            else:
                self.policy = IndependentPolicy(problem.cardinalities, init_rng)
            self.optimizer = Adam(self.policy.parameters(), lr=o["lr"])
        size = 1
        for c in self.cards:
            size *= int(c)
        # Rows as int64 keys (mixed radix) where the space fits, else as their bytes.
        self.radix = np.cumprod(np.concatenate([[1], self.cards[:-1]])).astype(np.int64) if size < 2 ** 62 else None
        self.told = np.zeros((0, len(self.cards)), dtype=np.int64)   # every row told, in order
        self.seen_keys = self._keys(self.told)                          # their keys, sorted, unique
        self.screen_tokens = np.zeros((0, len(self.cards)), dtype=np.int64)  # policy draws of the last asks
        self.screen_scores = np.zeros(0, dtype=np.float64)                   # ... and their screen scores
        self.buffer_tokens = np.zeros((0, len(self.cards)), dtype=np.int64)  # told, not yet learnt from
        self.buffer_rewards = np.zeros(0, dtype=np.float64)
        self.baseline = None       # REINFORCE's moving average of the reward
        self.spread = None         # ... and of its squared deviation from the baseline
        self.accept = 1.0          # share of policy samples that passed the screen last time
        self.accept_uniform = {"band": 1.0, "anywhere": 1.0}  # ... of uniform ones, in the band and anywhere
        self.updates = 0
        self.asked_from = {}

    # ---- asking -------------------------------------------------------------------------------------
    def _in_band(self, tokens: np.ndarray) -> np.ndarray:
        ratio = np.asarray(self.problem.latency(tokens), dtype=np.float64) / self.problem.target_ms
        return (ratio >= self.low) & (ratio <= self.high)

    def _latency_term(self, tokens: np.ndarray) -> np.ndarray:
        """The absolute reward's latency term (beta x |LAT/T - 1|), which the latency model knows."""
        latency = np.asarray(self.problem.latency(tokens), dtype=np.float64)
        return self.problem.reward(np.zeros(len(tokens)), latency)

    def _keys(self, tokens: np.ndarray) -> np.ndarray:
        """One sortable key per row: the mixed-radix index where the space fits an int64, else the bytes."""
        if self.radix is not None:
            return tokens @ self.radix
        return np.ascontiguousarray(tokens).view(np.dtype((np.void, tokens.shape[1] * 8)))[:, 0]

    def _fresh(self, tokens: np.ndarray) -> np.ndarray:
        return ~np.isin(self._keys(tokens), self.seen_keys)

    def _screen(self, tokens: np.ndarray, band: bool, fresh: bool, taken: np.ndarray) -> np.ndarray:
        """Which rows pass: in the band (if `band`); never told, not in `taken` (keys asked earlier in
        this ask) and the first of their kind in `tokens` (if `fresh`)."""
        keep = self._in_band(tokens) if band else np.ones(len(tokens), dtype=bool)
        if fresh:
            keys = self._keys(tokens)
            keep &= ~np.isin(keys, self.seen_keys) & ~np.isin(keys, taken)
            rows = np.flatnonzero(keep)
            first = np.zeros(len(tokens), dtype=bool)
            first[rows[np.unique(keys[rows], return_index=True)[1]]] = True
            keep &= first
        return keep

    def _draw(self, source: str, n: int) -> np.ndarray:
        uniforms = self.rng.random((n, len(self.cards)))
        if source == "uniform":
            return np.minimum((uniforms * self.cards).astype(np.int64), self.cards - 1)
        with one_thread():
            return self.policy.sample(uniforms)

    def ask(self, n: int) -> np.ndarray:
        n = _number("ask n", n, 1, None, integer=True)
        o = self.options
        fresh = o["fresh"]
        out: list[np.ndarray] = []
        have = 0

        def take(source: str, band: bool, only_fresh: bool, pool: int) -> float:
            nonlocal have
            drawn = self._draw(source, pool)
            taken = self._keys(np.concatenate(out)) if out else self._keys(drawn[:0])
            passed = self._screen(drawn, band, only_fresh, taken)
            ok = drawn[passed]
            if len(ok) > n - have and self.pick:
                # More passed than needed: the best by the reward's known part (the latency term) first.
                ok = ok[np.argsort(-self._latency_term(ok), kind="stable")]
            ok = ok[:n - have]
            out.append(ok)
            have += len(ok)
            key = source if only_fresh else "repeat"
            self.asked_from[key] = self.asked_from.get(key, 0) + len(ok)
            keep = o["band_rows"]
            if source == "policy" and band and keep and o["band_weight"] > 0:
                # The last draws, kept for the screen's signal in the next update (see _update).
                score = self._in_band(drawn) * (1.0 + self._fresh(drawn))
                self.screen_tokens = np.concatenate([self.screen_tokens, drawn])[-keep:]
                self.screen_scores = np.concatenate([self.screen_scores, score])[-keep:]
            return float(passed.sum()) / pool

        # The policy: at most POLICY_DRAWS draws per row asked (its compute budget), in rounds sized
        # by the share of its draws that passed the screen last time.
        budget, floor = POLICY_DRAWS * n, 1.0 / (POLICY_DRAWS * n)
        while have < n and budget > 0:
            want = 1.5 * (o["oversample"] if self.pick else 1) * (n - have)
            # A small probe when nothing passed last time (the band may be exhausted for this policy).
            probe = self.accept <= floor
            pool = int(min(budget, max(16, math.ceil(want if probe else want / self.accept))))
            budget -= pool
            self.accept = max(take("policy", True, fresh, pool), floor)
            if probe and self.accept <= floor:
                break
        # What the policy could not fill: uniform draws under the same screen; then fresh ones
        # anywhere (the band is exhausted or out of reach); a repeat only when nothing is fresh.
        for stage, band in (("band", True), ("anywhere", False)):
            for _ in range(FALLBACK_ROUNDS if self.accept_uniform[stage] > 1.0 / MAX_UNIFORM else 1):
                if have >= n:
                    break
                want = 1.5 * (o["oversample"] if band and self.pick else 1) * (n - have)
                pool = int(min(MAX_UNIFORM, max(64, math.ceil(want / self.accept_uniform[stage]))))
                if self.accept_uniform[stage] <= 1.0 / MAX_UNIFORM:
                    pool = MAX_UNIFORM // 4      # one smaller probe when nothing passed last time
                self.accept_uniform[stage] = max(take("uniform", band, fresh, pool), 1.0 / MAX_UNIFORM)
        if have < n:
            take("policy", False, False, n - have)
        return np.concatenate(out, axis=0)

    # ---- telling and learning -----------------------------------------------------------------------
    def tell(self, tokens, accuracy, latency_ms, reward) -> None:
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, len(self.cards))
        reward = np.asarray(reward, dtype=np.float64).reshape(-1)
        accuracy = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        if len(reward) != len(tokens) or len(accuracy) != len(tokens):
            raise ValueError(f"tell: expected one accuracy and reward per row of tokens ({len(tokens)}), "
                             f"got {len(accuracy)} and {len(reward)}")
        self.told = np.concatenate([self.told, tokens])
        self.seen_keys = np.union1d(self.seen_keys, self._keys(tokens))
        ok = np.isfinite(reward) & np.isfinite(accuracy)   # a failed evaluation teaches nothing
        self.buffer_tokens = np.concatenate([self.buffer_tokens, tokens[ok]])
        self.buffer_rewards = np.concatenate([self.buffer_rewards, reward[ok]])
        if len(self.buffer_rewards) >= self.batch_size:
            with one_thread():
                self._update(self.buffer_tokens, self.buffer_rewards)
            self.buffer_tokens = self.buffer_tokens[:0]
            self.buffer_rewards = self.buffer_rewards[:0]

    def _advantages(self, rewards: np.ndarray) -> np.ndarray:
        if self.options["algorithm"] == "ppo":
            std = rewards.std()
            return (rewards - rewards.mean()) / std if std > 0 else np.zeros_like(rewards)
        decay = self.options["baseline_decay"]
        if self.baseline is None:
            self.baseline, self.spread = float(rewards.mean()), float(rewards.var())
        adv = np.empty_like(rewards)
        for i, r in enumerate(rewards):   # the moving average as each sample arrives
            adv[i] = r - self.baseline
            self.spread = decay * self.spread + (1 - decay) * float(adv[i]) ** 2
            self.baseline = decay * self.baseline + (1 - decay) * float(r)
        return adv / math.sqrt(self.spread) if self.spread > 0 else np.zeros_like(adv)

    def _update(self, tokens: np.ndarray, rewards: np.ndarray) -> None:
        o = self.options
        adv = torch.as_tensor(self._advantages(rewards), dtype=torch.float32)
        n = len(tokens)
        # The screen's signal (free: the latency model and the strategy's memory, no evaluation): the
        # policy's own draws in the asks since the last update, scored 0 outside the band, 1 inside,
        # 2 inside and never told; standardised; one policy-gradient step on it per update.
        screen_adv = None
        std = self.screen_scores.std() if len(self.screen_scores) else 0.0
        if o["band_weight"] > 0 and std > 0:
            tokens = np.concatenate([tokens, self.screen_tokens])
            score = (self.screen_scores - self.screen_scores.mean()) / std
            screen_adv = torch.as_tensor(score, dtype=torch.float32)
        self.screen_tokens, self.screen_scores = self.screen_tokens[:0], self.screen_scores[:0]
        tok = torch.as_tensor(tokens)

        def screen_gain(logp):
            return 0.0 if screen_adv is None else o["band_weight"] * (screen_adv * logp[n:]).mean()

        logp, ent = self.policy.evaluate(tok)
        if o["algorithm"] == "ppo":
            old = logp[:n].detach()
            for epoch in range(o["epochs"]):
                if epoch:
                    logp, ent = self.policy.evaluate(tok[:n])
                ratio = torch.exp(logp[:n] - old)
                surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - o["clip"], 1 + o["clip"]) * adv)
                gain = surrogate.mean() + o["entropy"] * ent[:n].mean()
                self._step(-(gain + screen_gain(logp)) if epoch == 0 else -gain)
        else:
            gain = (adv * logp[:n]).mean() + o["entropy"] * ent[:n].mean()
            self._step(-(gain + screen_gain(logp)))
        self.updates += 1

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    # ---- state --------------------------------------------------------------------------------------
    def _options_json(self) -> dict:
        return json.loads(json.dumps(self.options))   # tuples as lists, as a saved state has them

    def get_state(self) -> State:
        arrays = {f"param.{k}": p.detach().numpy().copy() for k, p in self.policy.named_parameters()}
        arrays["adam.exp_avg"] = self.optimizer.exp_avg.numpy().copy()
        arrays["adam.exp_avg_sq"] = self.optimizer.exp_avg_sq.numpy().copy()
        arrays["told"] = self.told.copy()
        arrays["screen_tokens"] = self.screen_tokens.copy()
        arrays["screen_scores"] = self.screen_scores.copy()
        arrays["buffer_tokens"] = self.buffer_tokens.copy()
        arrays["buffer_rewards"] = self.buffer_rewards.copy()
        values = {"strategy": self.name, "options": self._options_json(), "seed": self.seed,
                  "rng": rng_state(self.rng), "adam_step": self.optimizer.step_count, "baseline": self.baseline,
                  "spread": self.spread, "accept": self.accept, "accept_uniform": dict(self.accept_uniform),
                  "updates": self.updates, "asked_from": dict(self.asked_from)}
        return State(values=values, arrays=arrays)

    def set_state(self, state: State) -> None:
        v, a = state.values, state.arrays
        if v.get("strategy") != self.name:
            raise ValueError(f"rl state: expected a state of strategy {self.name!r}, got {v.get('strategy')!r}")
        if v.get("options") != self._options_json() or v.get("seed") != self.seed:
            raise ValueError("rl state: saved with other options or seed than this strategy's")
        targets = [(p, f"param.{k}") for k, p in self.policy.named_parameters()]
        targets += [(self.optimizer.exp_avg, "adam.exp_avg"), (self.optimizer.exp_avg_sq, "adam.exp_avg_sq")]
        with torch.no_grad():
            for target, key in targets:
                value = np.asarray(a[key])
                if value.shape != tuple(target.shape) or value.dtype != np.float32:
                    raise ValueError(f"rl state: array {key} is {value.dtype} {value.shape}, "
                                     f"expected float32 {tuple(target.shape)}")
                target.copy_(torch.from_numpy(value))
        self.optimizer.step_count = int(v["adam_step"])
        self.rng = restore_rng(v["rng"])
        self.told = np.array(a["told"], dtype=np.int64).reshape(-1, len(self.cards))
        self.seen_keys = np.unique(self._keys(self.told))
        self.screen_tokens = np.array(a["screen_tokens"], dtype=np.int64).reshape(-1, len(self.cards))
        self.screen_scores = np.array(a["screen_scores"], dtype=np.float64).reshape(-1)
        self.buffer_tokens = np.array(a["buffer_tokens"], dtype=np.int64).reshape(-1, len(self.cards))
        self.buffer_rewards = np.array(a["buffer_rewards"], dtype=np.float64).reshape(-1)
        self.baseline, self.spread = v["baseline"], v["spread"]
        self.accept, self.updates = float(v["accept"]), int(v["updates"])
        self.accept_uniform = {k: float(x) for k, x in v["accept_uniform"].items()}
        self.asked_from = dict(v["asked_from"])


class RLIndependentStrategy(RLStrategy):
    name = "rl-independent"
    summary = "rl with TuNAS's independent per-decision logits instead of the LSTM (same screen and training)"
    default_policy = "independent"
