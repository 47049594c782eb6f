"""python train.py [group=choice ...] [key=value ...]: train a beta-VAE on face crops of one person.

With no arguments it trains on the built-in demo video, making the video and its crop cache first when missing.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facevae.core.config import check_command_line
from facevae.core.errors import exit_on_error
from facevae.sweeps import current_job, run_job
from facevae.training import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@exit_on_error
def main(cfg: DictConfig) -> float | None:
    job = current_job()
    if job is not None:
        return run_job(train, cfg, job)  # a failed job is recorded and the sweep goes on
    return train(cfg).get(cfg.optimized_metric)  # the value a Hydra sweeper (Optuna) optimises


if __name__ == "__main__":
    check_command_line("train")  # Hydra's own refusals, in one line
    main()
