"""python evaluate.py ckpt_path=PATH [smiles=PATH] [output_dir=DIR]: the seed's experiments on one checkpoint.

python evaluate.py sweep_dir=multirun/DATE/TIME: the same for every job of a sweep, compared side by side.

Writes metrics.json, latents.npz and PNG figures into the output directory and logs them to W&B beside the
training run. See the README's "Evaluate" section for what each number and figure means.

python evaluate.py compare=[PATH,PATH]: checkpoints (a beta-VAE and the WGAN baseline) side by side on the sample
measures they share: compare.csv, compare.md and compare.png.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from facevae.core.config import check_command_line
from facevae.core.errors import exit_on_error
from facevae.evaluation import evaluate, evaluate_sweep, summary_lines
from facevae.evaluation.compare import compare, markdown_table
from facevae.validation import check_config


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@exit_on_error
def main(cfg: DictConfig) -> None:
    check_config(cfg, "evaluate")
    if cfg.get("sweep_dir"):
        report = evaluate_sweep(cfg)
        done = int((report.table["status"] == "finished").sum())
        print("\n".join(["", f"compared {len(report.table)} jobs ({done} finished)", *map(str, report.files)]))
        return
    if cfg.get("compare"):
        rows, out_dir = compare(cfg)
        print("\n".join(["", *markdown_table(rows), str(out_dir)]))
        return
    metrics, out_dir = evaluate(cfg)
    print("\n".join(["", f"evaluated {metrics['checkpoint']}", *summary_lines(metrics), str(out_dir)]))


if __name__ == "__main__":
    check_command_line("evaluate")  # Hydra's own refusals, in one line
    main()
