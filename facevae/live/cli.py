"""`python -m facevae.live ckpt_path=PATH source=0|clip.mp4 [output=demo.mp4]`: the live view from the command line.

The closing lines are the run's summary; with output=, the coordinates table and the video last. Bad input ends
in one `error:` line on stderr.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facevae.core.config import CONF_DIR, check_command_line
from facevae.core.errors import exit_on_error
from facevae.live.loop import live
from facevae.live.settings import check_live


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="live")
@exit_on_error
def main(cfg: DictConfig) -> None:
    print("\n".join(live(check_live(cfg)).lines()))


def run() -> None:
    check_command_line("live")  # Hydra's own refusals (an unknown key, an unparsable override) in one line
    main()
