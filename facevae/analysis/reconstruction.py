"""Reconstruction on the held-out test blocks: PSNR and SSIM per frame, negative ELBO, KL, active units."""

from __future__ import annotations

import numpy as np
import torch

from facevae.analysis.latent_stats import active_units, psnr
from facevae.core.tensors import image_grid, to_float_images, to_uint8_hwc
from facevae.metrics.psnr import set_psnr
from facevae.models.objectives import gaussian_nll, kl_divergence
from facevae.models.ssim import ssim_per_image
from facevae.plots.figure import save_figure

ACTIVE_KL_NATS = 0.01


@torch.no_grad()
def reconstruction_metrics(model, images: np.ndarray, batch_size: int = 256, seed: int = 0) -> dict:
    """Metrics of `model` on uint8 crops, plus the per-frame arrays behind them (keys ending in `_per_frame`).

    PSNR and SSIM compare each input with the decoder mean at the posterior mean, on [0, 1] with data_range=1.
    `psnr` is the set's PSNR from the MSE over every pixel of every frame, as train.py's test/psnr
    (`facevae.metrics.psnr`); `psnr_frame_mean`, `psnr_median` and `psnr_p05` summarise the per-frame PSNRs.
    The negative ELBO is the beta=1 bound -E_q[log p(x|z)] + KL with one z ~ q(z|x) per image (seeded), in nats
    per image.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    out = {k: [] for k in ("psnr", "ssim", "nll", "kl", "mu", "logvar")}
    for start in range(0, len(images), batch_size):
        x = to_float_images(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])).to(device))
        mu, logvar = model.encode(x)
        mean = model.decode(mu).clamp(0, 1)
        eps = torch.randn(mu.shape, generator=generator).to(device)
        sampled = model.decode(mu + eps * torch.exp(0.5 * logvar))
        out["psnr"].append(psnr(x.cpu().numpy(), mean.cpu().numpy()))
        out["ssim"].append(ssim_per_image(mean, x, data_range=1.0).cpu().numpy())
        out["nll"].append(gaussian_nll(x, sampled, model.log_sigma).cpu().numpy())
        out["kl"].append(kl_divergence(mu, logvar).cpu().numpy())
        out["mu"].append(mu.cpu().numpy())
        out["logvar"].append(logvar.cpu().numpy())
    arrays = {k: np.concatenate(v) for k, v in out.items()}
    kl_dims = arrays["kl"].mean(axis=0)
    return {
        "psnr": set_psnr(10.0 ** (-arrays["psnr"] / 10.0)),
        "psnr_frame_mean": float(arrays["psnr"].mean()),
        "psnr_median": float(np.median(arrays["psnr"])),
        "psnr_p05": float(np.percentile(arrays["psnr"], 5)),
        "ssim": float(arrays["ssim"].mean()),
        "ssim_median": float(np.median(arrays["ssim"])),
        "ssim_p05": float(np.percentile(arrays["ssim"], 5)),
        "neg_elbo": float((arrays["nll"] + arrays["kl"].sum(axis=1)).mean()),
        "recon_nll": float(arrays["nll"].mean()),
        "kl": float(arrays["kl"].sum(axis=1).mean()),
        "kl_per_dim": [float(v) for v in kl_dims],
        "active_units": int(active_units(arrays["mu"])),
        "active_units_kl": int((kl_dims > ACTIVE_KL_NATS).sum()),
        "n_frames": int(len(images)),
        "psnr_per_frame": arrays["psnr"],
        "ssim_per_frame": arrays["ssim"],
    }


def reconstruction_figure(model, images: np.ndarray, metrics: dict, path, n: int = 8) -> None:
    """Histograms of per-frame PSNR and SSIM, and the best, median and worst test frames with reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from facevae.analysis.encoding import decode_latents, encode_images

    order = np.argsort(metrics["psnr_per_frame"])
    picks = np.concatenate([order[:n], order[len(order) // 2 - n // 2 :][:n], order[-n:]])[: 3 * n]
    mu, _ = encode_images(model, images[picks])
    recon = decode_latents(model, mu)
    fig = plt.figure(figsize=(12, 8), dpi=110)
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.4])
    for col, (key, unit) in enumerate([("psnr", "dB"), ("ssim", "")]):
        ax = fig.add_subplot(grid[0, col])
        values = metrics[f"{key}_per_frame"]
        ax.hist(values, bins=40, color="tab:blue", alpha=0.8)
        ax.axvline(values.mean(), color="k", linestyle="--", label=f"mean of frames {values.mean():.3f} {unit}")
        title = f"{key.upper()} of reconstructions on the held-out test blocks (n={len(values)})"
        if key == "psnr" and "psnr_mean_face" in metrics:
            # The baseline: the mean training face as every frame's reconstruction (train.py prints it too).
            base, gain = metrics["psnr_mean_face"], metrics["psnr"] - metrics["psnr_mean_face"]
            ax.axvline(metrics["psnr"], color="k", label=f"whole set {metrics['psnr']:.2f} dB (as train.py)")
            ax.axvline(base, color="tab:red", linestyle=":", lw=2, label=f"mean training face {base:.2f} dB")
            title += f"\n{gain:+.2f} dB over the mean face: " + ("better" if gain > 0 else "NO BETTER") + " than it"
        ax.set_xlabel(f"{key.upper()} per test frame {f'({unit})' if unit else ''}")
        ax.set_ylabel("test frames")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    rows = []
    for r in range(3):
        rows += [to_uint8_hwc(images[picks[r * n : (r + 1) * n]]), recon[r * n : (r + 1) * n]]
    ax.imshow(image_grid(np.concatenate(rows), ncols=n))
    side = images.shape[1] + 2  # image_grid's tile plus its 2-pixel gap
    names = [f"{kind} {what}" for kind in ("worst", "median", "best") for what in ("input", "reconstruction")]
    ax.set_yticks([2 + side * r + side / 2 for r in range(6)], names)
    ax.set_xticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("worst / median / best test frames by PSNR: each input row above its reconstruction")
    fig.tight_layout()
    save_figure(fig, path)
