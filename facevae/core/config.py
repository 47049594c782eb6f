"""Where the Hydra configs live, for the entry points that are modules (`python -m facevae.prepare`), and how to
call this Python in the commands the entry points suggest."""

import os
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def python_command() -> str:
    """How to call this Python from here: `.venv/bin/python` after `make train`, else plain `python`."""
    exe = Path(sys.executable).absolute()
    return os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else "python"


def check_command_line(config_name: str, args: list[str] | None = None) -> None:
    """Hydra's own refusals of a command line (a key that is not a setting, a config choice that does not exist, an
    override it cannot parse) as one `error:` line and exit status 2, like every other bad input. Flags (-m, --cfg,
    --help) and sweeps are left to Hydra, which knows what to do with them."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    args = sys.argv[1:] if args is None else args
    if any(arg.startswith("-") for arg in args):
        return
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=list(args))
    except HydraException as err:
        text = str(err)
        if text.startswith("Ambiguous value"):  # a sweep's values: Hydra's multirun (a sweep= preset) decides
            return
        print(f"error: {_one_line(text)}", file=sys.stderr)
        sys.exit(2)


def _one_line(text: str) -> str:
    """Hydra's message without its search path and links, on one line."""
    kept = []
    for line in text.splitlines():
        if line.startswith(("Config search path", "See https")):
            break
        kept.append(line.strip())
    return " ".join(part for part in kept if part)
