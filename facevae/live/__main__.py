"""`python -m facevae.live ckpt_path=PATH source=0|clip.mp4 [output=demo.mp4]`: the live view from the command line.

The closing lines are the run's summary; with output=, the coordinates table and the video last. Bad input ends
in one `error:` line on stderr; Ctrl-C before the first frame ends in one line too (during the run it finishes
the run: the video and the table are written with the frames seen so far).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from facevae.core.config import CONF_DIR
from facevae.core.errors import exit_on_error
from facevae.live.loop import live
from facevae.live.settings import validate


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="live")
@exit_on_error
def main(cfg: DictConfig) -> None:
    print("\n".join(live(validate(cfg)).lines()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        sys.exit(130)
