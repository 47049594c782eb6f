"""`python -m facevae.bench evaluate --ckpt PATH`: how long evaluate.py takes on one checkpoint, section by section.

evaluate.py's own log is timed line by line (each line starts a section), in one process, with W&B off and the
results written to a temporary directory (or kept in --output-dir). Wall seconds and the process's CPU seconds are
both printed: on a shared machine the wall time moves with the load beside it, the CPU time much less.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from facevae.bench.machine import describe_machine


class _SectionTimer(logging.Handler):
    """Wall and CPU time from each evaluation log line to the next: one row per section."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.rows: list[tuple[str, float, float]] = []
        self._last = ("start", time.perf_counter(), time.process_time())

    def emit(self, record: logging.LogRecord) -> None:
        name, wall, cpu = self._last
        self.rows.append((name, time.perf_counter() - wall, time.process_time() - cpu))
        self._last = (record.getMessage()[:70], time.perf_counter(), time.process_time())

    def close_section(self) -> None:
        self.emit(logging.makeLogRecord({"msg": "end"}))


def bench_evaluate(args: argparse.Namespace) -> None:
    # Here, not at the top: the evaluation pipeline brings matplotlib, scikit-learn and Hydra's composition, which
    # `python -m facevae.bench` loads for this bench alone.
    from hydra import compose, initialize_config_dir

    from facevae.core.config import CONF_DIR
    from facevae.evaluation import evaluate

    timer = _SectionTimer()
    logging.getLogger("facevae").addHandler(timer)
    print(f"\n{describe_machine()}; evaluate.py ckpt_path={args.ckpt} n_samples={args.n_samples}\n")
    with tempfile.TemporaryDirectory() as tmp, initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "evaluate",
            [
                f"ckpt_path={args.ckpt}",
                f"output_dir={tmp}/eval",
                "wandb=false",
                f"n_samples={args.n_samples}",
                *args.overrides,
            ],
        )
        start, cpu = time.perf_counter(), time.process_time()
        evaluate(cfg)
        total = (time.perf_counter() - start, time.process_time() - cpu)
    timer.close_section()
    print("| section (from its first log line) | wall s | CPU s |\n|---|---:|---:|")
    for name, wall, cpu_s in timer.rows[1:]:
        print(f"| {name} | {wall:.1f} | {cpu_s:.1f} |")
    print(f"| **evaluate.py, whole** | **{total[0]:.1f}** | **{total[1]:.1f}** |")
