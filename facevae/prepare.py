"""`python -m facevae.prepare data.video=PATH`: extract the face-crop cache, or reuse it; the path is printed last.

With no `data.video` it makes the built-in demo video first. Training runs the same step when its cache is missing.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facevae.core.config import CONF_DIR, check_command_line
from facevae.core.errors import exit_on_error
from facevae.data.extract import format_summary
from facevae.validation import check_config


@exit_on_error
def prepare(cfg: DictConfig) -> str:
    check_config(cfg, "prepare")
    datamodule = hydra.utils.instantiate(cfg.data)
    result = datamodule.prepare_cache()
    if result.reused:
        print(f"reusing the cache built earlier for {datamodule.source} ({format_summary(result.summary)})")
    else:
        print(f"extracted {datamodule.source}: {format_summary(result.summary)}")
    print(result.path)
    return str(result.path)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
def main(cfg: DictConfig) -> None:
    prepare(cfg)


if __name__ == "__main__":
    check_command_line("prepare")  # Hydra's own refusals, in one line
    main()
