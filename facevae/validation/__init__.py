"""One check of every config value a command reads, before it extracts data, makes a logger or writes a directory.

`check_config(cfg, command)` runs, for `train`, `prepare` or `evaluate`, the rules of every group the command reads:
the top-level values, `data`, `model`, `trainer`, `logger`, `callbacks`, and evaluate's own (the live view checks its
own group in `facevae.live.settings`, with the shared rules here). A class built from a group (`_target_`) brings its
own rules (`check_settings`, beside the values it uses); the rules for Lightning's and W&B's objects, for the
commands' own values, and those that tie groups together are here, one module per group. The first bad value ends
the command with one line, `error: <setting>=<value>: <what it must be>`. `train.py` runs the check from a Hydra
callback too, before Hydra makes the run's directory, and for each value a sweep will try.

Besides values that would crash, the checks refuse runs that would "succeed" doing nothing of use: no epoch to
train, no validation to choose the best checkpoint by, no test blocks to test on, no checkpoint kept.
"""

from facevae.validation.commands import check_config
from facevae.validation.sweeps import ConfigCheck, check_sweep, sweep_values

__all__ = ["ConfigCheck", "check_config", "check_sweep", "sweep_values"]
