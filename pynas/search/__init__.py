"""The search: a strategy proposes architectures of a space, the space's latency model prices them
(free), an evaluator measures their accuracy (the budget), a reward combines both, and everything
goes to a log that a killed run resumes from.

    from pynas import search
    run = search.run("nb201", "nb201-pixel3", target_ms=5.0, evaluator="nb201:imagenet16",
                     budget=200, out="runs/a", strategy="evolution", seed=0)
    print(search.report("runs/a"))          # the front, the best under T; writes pareto.png, best.txt
    search.resume("runs/a")                 # after a kill: the same end as an uninterrupted run

Modules: reward (the rewards), problem (what a strategy sees), strategies/ (ask/tell), evaluators/
(accuracy), target (where T lies in the space), log (SQLite), loop (run, resume), report.
"""
from pynas.search.loop import DEFAULT_STRATEGY, Run, configure, resume, run, start, target_model
from pynas.search.report import write as report
from pynas.search.reward import DEFAULT as DEFAULT_REWARD, PRESETS as REWARDS, Reward, make_reward

__all__ = ["DEFAULT_REWARD", "DEFAULT_STRATEGY", "REWARDS", "Reward", "Run", "configure", "make_reward", "report",
           "resume", "run", "start", "target_model"]
