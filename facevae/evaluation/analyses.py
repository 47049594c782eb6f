"""The analyses evaluate.py runs on a checkpoint, one class each, chosen in the `analysis` config group.

conf/analysis/ holds one YAML per analysis naming its class here (`_target_`) and its settings; conf/evaluate.yaml
selects them in its defaults list, in the order they run. Each takes the `Evaluation` (the run, its data, the codes
of every frame) and returns its numbers for metrics.json, writing its figure into the output folder. A user's own
analysis is any class like these, or a function `fn(ev, **settings) -> dict`, named by `_target_`.

They follow the seed proposal (Sullivan, "Analysis and Modification of Encoded Single User Facial Expression Data",
section 2.2): reconstruction of held-out frames, samples (quality, mode collapse, memorisation), three-point
interpolation, traversals, where smiles sit, the expression shift, and disentanglement.
"""

from __future__ import annotations

import logging

import numpy as np

from facevae.core import rules
from facevae.evaluation.context import Evaluation
from facevae.evaluation.expression_shift import shift_toward_smiles
from facevae.evaluation.samplers import evaluate_samplers, write_samplers
from facevae.evaluation.smile_sets import in_video_auc, label_report, smile_sets
from facevae.metrics import disentanglement as dis
from facevae.metrics.embedding import latent_embedding
from facevae.metrics.interpolation import interpolation_scores
from facevae.metrics.latent_stats import kl_per_dim
from facevae.metrics.psnr import mean_face_psnr
from facevae.metrics.reconstruction import reconstruction_scores
from facevae.metrics.smiles import smile_grouping
from facevae.metrics.traversals import kl_order, traversal_scores
from facevae.metrics.unsupervised import unsupervised_scores
from facevae.models.inference import decode_interpolations, decode_latents, reconstruct, reconstruction_terms
from facevae.models.latent_paths import central_code, data_ranges, pick_corners, prior_corners, traversal_latents
from facevae.plots.interpolation import interpolation_figure
from facevae.plots.reconstruction import pick_frames, reconstruction_figure
from facevae.plots.smiles import smiles_latent_figure
from facevae.plots.traversals import traversal_figure

log = logging.getLogger(__name__)


class Analysis:
    """One analysis: `figure` is the file it writes (None: numbers only); `check_settings` checks its settings
    before any work, as facevae.validation checks a built class's."""

    figure: str | None = None
    limits: dict[str, tuple[int, int]] = {}

    @classmethod
    def check_settings(cls, values: dict, prefix: str) -> None:
        for key, value in values.items():
            rules.whole(f"{prefix}.{key}", value, *cls.limits[key])

    def __call__(self, ev: Evaluation) -> dict:
        raise NotImplementedError


class Reconstruction(Analysis):
    """reconstruction.png: PSNR, SSIM, negative ELBO, KL and active units on the held-out test blocks, beside the
    mean training face."""

    figure = "reconstruction.png"

    def __call__(self, ev: Evaluation) -> dict:
        log.info("reconstruction on %d test frames", len(ev.test))
        scores = reconstruction_scores(reconstruction_terms(ev.model, ev.test, seed=ev.seed))
        scores.scores["psnr_mean_face"] = mean_face_psnr(ev.train, ev.test)
        picks = pick_frames(scores.psnr_per_frame)
        reconstruction_figure(scores, ev.test[picks], reconstruct(ev.model, ev.test[picks]), ev.out / self.figure)
        ev.shared["kl_per_dim"] = np.asarray(scores.scores["kl_per_dim"])
        return scores.metrics()


class Samples(Analysis):
    """samples.png and sampler.npz: N(0, I) and a Gaussian mixture fitted to the training codes, each judged on
    face rate, precision, recall, diversity and memorisation beside the real references (`n_samples`, `sampler`)."""

    figure = "samples.png"

    def __call__(self, ev: Evaluation) -> dict:
        n = int(ev.cfg.n_samples)
        log.info("%d samples from N(0, I) and from a sampler fitted to the training codes", n)
        images = {"train": ev.train, "test": ev.test, "recon": decode_latents(ev.model, ev.mu[ev.rows("test")])}
        images["train_recon"] = decode_latents(ev.model, ev.mu[ev.rows("train")])
        train_mu, val_mu = ev.mu[ev.rows("train")], ev.mu[ev.rows("val")]
        sampled = evaluate_samplers(ev.model, train_mu, val_mu, images, n, ev.seed, ev.cfg.sampler)
        write_samplers(sampled, ev.train, sampled.metrics, ev.out)
        ev.shared["samplers"] = sampled
        return sampled.metrics


class Interpolation(Analysis):
    """interpolation.png: the plane between three held-out frames' codes, three prior draws and (after `samples`)
    three draws of the fitted sampler, `grid` x `grid` cells, and lines of `strip` steps by lerp and slerp."""

    figure = "interpolation.png"
    limits = {"grid": (2, 32), "strip": (2, 64)}

    def __init__(self, grid: int = 8, strip: int = 10) -> None:
        self.grid, self.strip = grid, strip

    def __call__(self, ev: Evaluation) -> dict:
        log.info("three-point interpolation")
        test_mu = ev.mu[ev.rows("test")]
        chosen = pick_corners(test_mu, ev.seed)
        corners = {"encoded": test_mu[chosen], "prior": prior_corners(ev.mu.shape[1], ev.seed)}
        sampled = ev.shared.get("samplers")
        if sampled is not None:
            corners["fitted"] = sampled.fitted.sample(3, ev.seed)
        grids, strips = decode_interpolations(ev.model, corners, self.grid, self.strip)
        stats = interpolation_scores(grids, strips, self.grid)
        verdicts = {name: panel.verdict for name, panel in sampled.panels.items()} if sampled is not None else {}
        interpolation_figure(grids, strips, stats, ev.test[chosen], path=ev.out / self.figure, verdicts=verdicts)
        return stats


class Traversals(Analysis):
    """traversals.png: each latent swept over its range in the data from a typical held-out code, the `rows`
    highest-KL ones (a figure of a thousand rows would take minutes to draw and could not be read)."""

    figure = "traversals.png"
    limits = {"rows": (1, 1024)}

    def __init__(self, rows: int = 32) -> None:
        self.rows = rows

    def __call__(self, ev: Evaluation) -> dict:
        log.info("latent traversals")
        test = ev.rows("test")
        kl = ev.shared.get("kl_per_dim")
        if kl is None:  # without the reconstruction analysis: the same KL from the test frames' codes
            kl = kl_per_dim(ev.mu[test], ev.logvar[test])
        base, values = central_code(ev.mu[test]), data_ranges(ev.mu[ev.rows("train")])
        order = kl_order(kl, self.rows)
        images = decode_latents(ev.model, traversal_latents(base, order, values).astype(np.float32))
        scores = traversal_scores(images, order, kl, values.shape[-1])
        traversal_figure(images, scores, kl, values, ev.out / self.figure)
        return scores.metrics()


class Smiles(Analysis):
    """smiles_latent.png: do smiles group in latent space? How the video's frames were labelled, the grouping
    scores (silhouette, k-NN purity beside chance, a blockwise AUC), and a PCA and t-SNE of every code."""

    figure = "smiles_latent.png"

    def __call__(self, ev: Evaluation) -> dict:
        sets = smile_sets(ev)
        if sets is None:
            return {}
        result = label_report(sets.labels, ev.dm, sets.pool)
        if not sets.enough:
            log.warning("too few smiling (%d) or other (%d) frames for the smile analyses", *_sizes(sets))
            return {**result, "n_smile": len(sets.mu_smile), "n_other": len(sets.other)}
        log.info("smiles: %d smiling against %d others (%s frames)", *_sizes(sets), ev.cfg.smile_frames)
        # Photos, or a clip cut into stretches: each group is held out once (up to 20 folds), not dealt into 5.
        n_folds = 5 if sets.smile_grouping.startswith("blocks") else min(20, max(5, len(np.unique(sets.smile_groups))))
        others = ev.mu[sets.other]
        other_groups = sets.groups[sets.other]
        result.update(
            smile_grouping(sets.mu_smile, others, sets.smile_groups, other_groups, seed=ev.seed, n_folds=n_folds)
        )
        result["smile_auc_groups"] = f"smiles: {sets.smile_grouping}; others: {sets.grouping}"
        result["smile_source"] = str(ev.smiles.path) if ev.smiles is not None else sets.labels.rule
        if ev.smiles is not None:
            result.update(in_video_auc(ev.mu, sets.labels, sets.pool, sets.groups, ev.seed))
        embedding = latent_embedding(sets.mu_smile, others, seed=ev.seed)
        probability = sets.labels.probability
        scores = probability[sets.other] if probability is not None else None
        smiles_latent_figure(embedding, ev.out / self.figure, smile_scores=scores, note=sets.note, scores=result)
        return {**result, **embedding.metrics()}


def _sizes(sets) -> tuple[int, int]:
    return len(sets.mu_smile), len(sets.other)


class ExpressionShift(Analysis):
    """expression_shift.png: held-out non-smiling faces moved toward the smiles (to their centroid, along the
    classifier normal, and along it with pose and light held), judged on the decoded faces."""

    figure = "expression_shift.png"

    def __call__(self, ev: Evaluation) -> dict:
        sets = smile_sets(ev)
        if sets is None or not sets.enough:
            return {}
        starts = np.intersect1d(sets.other, sets.held)  # faces the model never trained on, labelled non-smiling
        if len(starts) == 0:
            log.warning("no held-out frame labelled non-smiling to shift toward a smile")
            return {}
        return shift_toward_smiles(ev, sets, starts)


class Disentanglement(Analysis):
    """Supervised scores against the sidecar factors when there are any (MIG, SAP, DCI, as disentanglement_lib
    defines them, `factor_bins` bins); the unsupervised ones always.

    They use every frame in time order (a representation's disentanglement is a property of the data it encodes,
    not of held-out generalisation); SAP and DCI fit on the first 80% and score on the last 20% of that order.
    """

    def __call__(self, ev: Evaluation) -> dict:
        mu, bins, dm = ev.mu, ev.cfg.factor_bins, ev.dm
        log.info("disentanglement over %d frames", len(mu))
        scores = unsupervised_scores(mu, bins)
        factors = dm.data.factors()
        if factors is None:
            return scores
        order = np.argsort(dm.data.frames["time_s"].to_numpy(), kind="stable")
        labels = dis.discretize(factors[order], bins)
        details = dis.mig_details(mu[order], labels, bins)
        d = dis.dci(mu[order], labels, bins=bins)
        names = dm.factor_names
        scores.update(
            {
                "mig": float(details["mig"]),
                "mig_per_factor": dict(zip(names, map(float, details["per_factor"]), strict=True)),
                "sap": float(dis.sap(mu[order], factors[order], continuous=True)),
                "dci_disentanglement": float(d["disentanglement"]),
                "dci_completeness": float(d["completeness"]),
                "dci_informativeness": float(d["informativeness"]),
                # Which factors the latents hold: position, scale and roll should fall with aligned crops.
                "dci_informativeness_per_factor": dict(zip(names, d["informativeness_per_factor"], strict=True)),
                "factor_bins": int(bins),
            }
        )
        return scores
