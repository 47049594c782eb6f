"""Where the Hydra configs live, for the entry points that are modules (`python -m facevae.prepare`), how to
call this Python in the commands the entry points suggest, and a check Hydra runs before it writes a run folder."""

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from facevae.core.errors import FaceVAEError, disk_error, is_disk_error
from facevae.core.files import require_folder

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def python_command() -> str:
    """How to call this Python from here: `.venv/bin/python` after `make train`, else plain `python`."""
    exe = Path(sys.executable).absolute()
    return os.path.relpath(exe) if exe.is_relative_to(Path.cwd()) else "python"


class WritableRunFolder(Callback):
    """Hydra callback: the run (or sweep) folder must be a new one this process can write, before Hydra makes it and
    writes its `.hydra/` files and log there, which it does before train.py's own checks (and reports with a
    traceback). A folder that holds anything is refused: Hydra would replace another run's config and log beside
    its checkpoints, or a user's own files of those names."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_new_folder(Path(config.hydra.run.dir), "hydra.run.dir", "a run")
        check_writable_folder(Path(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        check_new_folder(Path(config.hydra.sweep.dir), "hydra.sweep.dir", "a sweep")
        check_writable_folder(Path(config.hydra.sweep.dir), "hydra.sweep.dir")


def check_new_folder(folder: Path, setting: str, what: str) -> None:
    """Exit with one line on stderr when `folder` exists and is not empty. Lightning's DDP processes other than the
    first run this command again into the folder the first one made (they write nothing there): not refused."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return
    if not folder.is_dir() or next(folder.iterdir(), None) is None or _a_start_that_failed(folder):
        return
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    resume = " (to go on training a run, resume into a new folder: ckpt_path=<its last.ckpt>)"
    print(
        f"error: {setting}={folder}: already holds {len(names)} entries ({shown}); {what} writes its config and log "
        f"there and would replace theirs: give a new or empty folder{resume if what == 'a run' else ''}",
        file=sys.stderr,
    )
    sys.exit(2)


def _a_start_that_failed(folder: Path) -> bool:
    """Only what Hydra writes before a run starts (`.hydra/` and the log), as a run refused in one line leaves it:
    no results to lose, and running again into the same folder is what a user does once the input is fixed."""
    names = {p.name for p in folder.iterdir()}
    hydra = folder / ".hydra"
    return (
        ".hydra" in names
        and names <= {".hydra", "train.log"}
        and hydra.is_dir()
        and {p.name for p in hydra.iterdir()} <= {"config.yaml", "hydra.yaml", "overrides.yaml"}
    )


def check_writable_folder(folder: Path, setting: str) -> None:
    """Exit with one line on stderr unless `folder` exists or can be made and written: a trial folder with a file of
    64 KiB (more than Hydra's own files need) is made in its nearest existing ancestor, and removed."""
    try:
        require_folder(folder, setting)
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        try:
            trial = Path(tempfile.mkdtemp(prefix=".facevae-write-check-", dir=existing))
            try:
                with open(trial / "probe", "wb") as f:
                    f.write(bytes(1 << 16))
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                shutil.rmtree(trial)
        except OSError as err:
            if not is_disk_error(err):
                raise
            raise disk_error(folder, err, setting) from None
    except FaceVAEError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def check_command_line(config_name: str, args: list[str] | None = None) -> None:
    """Hydra's own refusals of a command line (a key that is not a setting, a config choice that does not exist, an
    override it cannot parse) as one `error:` line and exit status 2, like every other bad input. Flags (-m, --cfg,
    --help) and sweeps are left to Hydra, which knows what to do with them. Without `args`, the command's own
    sys.argv, in which a setting that moved is first renamed to its new place (so command lines written for the
    flat configs keep working), saying so."""
    if args is None:
        sys.argv[1:], notes = follow_moved_keys(sys.argv[1:])
        for note in notes:
            print(f"note: {note}")
        args = sys.argv[1:]
    if any(arg.startswith("-") for arg in args):
        return
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            compose(config_name, overrides=list(args))
    except HydraException as err:
        text = str(err)
        if text.startswith("Ambiguous value"):  # a sweep's values: Hydra's multirun (a sweep= preset) decides
            return
        print(f"error: {_one_line(text)}{_quoting_hint(text)}", file=sys.stderr)
        sys.exit(2)
    for arg in args:
        if (unread := _added_top_level_key(arg)) is not None:
            print(f"error: {unread}: not a setting of this command, nothing would read it", file=sys.stderr)
            sys.exit(2)


def _added_top_level_key(arg: str) -> str | None:
    """`+name=value` (or `++name=`) for a name that is not a config group adds a top-level key no code reads: a typo
    that would otherwise train silently without it. Keys inside a node (`+trainer.max_steps=`) are left to the
    node's own checks; groups (`+experiment=seed_paper`) are choices."""
    if not arg.startswith("+"):
        return None
    key = arg.lstrip("+").partition("=")[0]
    if "." in key or "/" in key or (CONF_DIR / key).is_dir():
        return None
    return key


def _quoting_hint(text: str) -> str:
    """Hydra's grammar refuses a value with spaces, '=' or some other characters unless it is quoted."""
    if "LexerNoViableAltException" in text or "mismatched input" in text or "token recognition error" in text:
        return " (a value with '=', accents or other symbols must be quoted: 'data.video=\"my video.mp4\"')"
    return ""


# Settings of the networks and the optimizer live in the nodes that build them (model.net, model.generator,
# model.optimizer), and the data's in its groups (data.extraction, data.split, data.loader, as
# facevae.data.datamodule.FLAT lists them); a command line written for the flat configs is read at the new places.
MOVED = {
    "model.latent_dim": "model.net.latent_dim",  # the WGAN's: model.generator.latent_dim (_new_place)
    "model.channels": "model.net.channels",
    "model.hidden": "model.net.hidden",
    "model.image_size": "model.net.image_size",
    "model.lr": "model.optimizer.lr",
    "model.adam_betas": "model.optimizer.betas",
    "model.width": "model.generator.width",
    **{f"data.{key}": f"data.extraction.{key}" for key in ("fps", "crop_scale", "crop_shift_y", "detect_width")},
    **{f"data.{key}": f"data.extraction.{key}" for key in ("min_face", "align", "align_smooth_s")},
    **{f"data.{key}": f"data.split.{key}" for key in ("block_s", "gap_s", "val_fraction", "test_fraction")},
    "data.split_seed": "data.split.seed",
    **{f"data.{key}": f"data.loader.{key}" for key in ("batch_size", "eval_batch_size", "num_workers", "on_device")},
}


def follow_moved_keys(args: list[str]) -> tuple[list[str], list[str]]:
    """The command line with each `key=` (or `+key=`, `~key`) that moved renamed to where it is now, and a note for
    each. model.latent_dim is the generator's for model=wgan_gp, the network's otherwise."""
    wgan = "model=wgan_gp" in args
    renamed, notes = [], []
    for arg in args:
        found = re.match(r"^([+~]*)((?:model|data)\.\w+)(.*)$", arg, flags=re.S)
        new = None if found is None else _new_place(found.group(2), wgan)
        if new is None:
            renamed.append(arg)
            continue
        renamed.append(f"{found.group(1)}{new}{found.group(3)}")
        notes.append(f"{found.group(2)} is now {new}; read as such")
    return renamed, notes


def _new_place(key: str, wgan: bool) -> str | None:
    if key == "model.latent_dim":
        return "model.generator.latent_dim" if wgan else "model.net.latent_dim"
    return MOVED.get(key)


def _one_line(text: str) -> str:
    """Hydra's message without its search path and links, on one line."""
    kept = []
    for line in text.splitlines():
        if line.startswith(("Config search path", "See https")):
            break
        kept.append(line.strip())
    return " ".join(part for part in kept if part)
