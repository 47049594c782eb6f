"""The evaluation pipeline: a trained checkpoint's analyses (`evaluate`), a sweep's jobs compared (`evaluate_sweep`)
and checkpoints side by side (`compare`), as evaluate.py runs them.

- run.py: one checkpoint, its analyses chosen by the `analysis` config group, written to a folder and W&B
- analyses.py: the analyses themselves, one class each, over an `Evaluation` (context.py)
- samplers.py, smile_sets.py, expression_shift.py: what the analyses share or need at length
- generator.py: the measures of a model that generates but does not encode (the WGAN)
- compare.py, sweep_report.py: several checkpoints, or every job of a sweep, in one table and figures
"""

from facevae.evaluation.run import FIGURES, evaluate, evaluate_sweep, summary_lines

__all__ = ["FIGURES", "evaluate", "evaluate_sweep", "summary_lines"]
