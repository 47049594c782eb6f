"""Samples from the prior: are they faces, are they varied (no mode collapse), and are they new (no memorisation)?

The seed proposal's primary metric is "the quality of its generated samples" (Sullivan, "Analysis and
Modification of Encoded Single User Facial Expression Data", section 2.2). Three plain checks of that, each against
a reference from real crops so the number reads on its own:

    face rate      the share of samples in which the Haar cascade that made the crops still finds a face, against
                   the same share for real held-out crops (`face_detection_rate`)
    diversity      the mean pixel distance between two samples, against the same for two held-out crops: a ratio
                   near 0 is mode collapse (one face for every z)
    memorisation   the distance from each sample to its nearest training crop, against the same for held-out crops,
                   which are new faces of the same person by construction: a ratio well below 1 means samples sit
                   closer to training frames than new frames do, i.e. the decoder replays frames it has seen

The nearest-neighbour test follows the usual memorisation check of generative models (e.g. Theis, van den Oord &
Bethge 2016, "A note on the evaluation of generative models", section 3.3, who also note its limits: pixel L2
sees a shifted copy as far away). A VAE's samples are blurrier than real crops, which moves them away from every
sharp frame and lowers their diversity; pass the reconstructions of the held-out crops as `heldout_recon` to get a
reference with the same blur.
"""

from __future__ import annotations

import cv2
import numpy as np

from facevae.data.faces import load_cascade
from facevae.metrics.latent_stats import mean_pairwise_distance, nearest_neighbours

# Face detection on crops. A crop is 0.8 of the Haar box (CropParams.scale), so the face overfills it and no
# detection window fits around it; the crop is therefore enlarged and given a border of repeated edge pixels, 30%
# of its side each way, before the cascade runs (20% kept 97.5% of real crops, 30% 99%; a grey border did worse).
# On 200 jittered astronaut crops (`astronaut_crops`) the boxes found measure 1.05 to 1.4 times the crop's side,
# so windows below 0.6 of it are not searched: 1.5x faster than 0.5 and 2.3x faster than 0.4 at the same rates,
# with a margin for looser crops. minNeighbors 5, OpenCV's usual choice, found a face in 99.5% of those crops and
# in 100% of 240 crops of the demo video, and in none of 200 uniform-noise images, flat grey, pixel-shuffled
# crops or smooth random colour fields; 3 scored the same, 8 dropped real crops to 97.5%.
FACE_PAD = 0.3
FACE_MIN_SIZE = 0.6
FACE_MIN_NEIGHBORS = 5
FACE_SCALE_FACTOR = 1.1


def face_detection_rate(images: np.ndarray, upscale: int = 4) -> float:
    """Share of images (uint8 N x H x W x 3 RGB crops) in which OpenCV's Haar frontal-face cascade finds a face.

    The same cascade as the crop pipeline (Viola & Jones 2001, "Rapid object detection using a boosted cascade of
    simple features"), on each crop enlarged `upscale` times and padded; the settings and how they were chosen are
    at FACE_PAD above. Real crops score ~1, noise ~0; blur lowers the rate only slowly (0.95 at a Gaussian blur
    of 2 pixels on a 64-pixel crop), so it measures "looks like a frontal face", not sharpness.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 N x H x W x 3 images, got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ValueError("no images to look for faces in")
    cascade = load_cascade()
    height, width = upscale * images.shape[1], upscale * images.shape[2]
    pad = int(round(FACE_PAD * height))
    min_side = int(FACE_MIN_SIZE * min(height, width))
    hits = 0
    for image in images:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_CUBIC)
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = cascade.detectMultiScale(gray, FACE_SCALE_FACTOR, FACE_MIN_NEIGHBORS, minSize=(min_side, min_side))
        hits += len(found) > 0
    return hits / len(images)


def spread_indices(n: int, k: int | None) -> np.ndarray:
    """At most k indices spread evenly over range(n), first and last included; all n when k is None or >= n.

    Crops are in video order, so evenly spaced rows cover the whole recording, and the choice never changes.
    """
    if k is None or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def nearest_training_crops(
    queries: np.ndarray, train: np.ndarray, max_train: int | None = 5000
) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the L2 distance (on [0, 1] pixels, flattened) to its nearest training crop, and that
    crop's row in `train` -> ((M,), (M,)).

    Only `spread_indices(len(train), max_train)` training rows are searched: at 8 fps neighbouring frames are
    near copies, so every third frame of a long video misses little, at a third of the time. A query that copies
    an unsearched frame then reads as far as that frame's searched neighbour.
    """
    queries, train = np.asarray(queries), np.asarray(train)  # a memory-mapped cache stays mapped
    if queries.dtype != np.uint8 or train.dtype != np.uint8:
        raise ValueError(f"queries and train must be uint8 crops, got {queries.dtype} and {train.dtype}")
    rows = spread_indices(len(train), max_train)
    # uint8 in, /255 out: L2 scales linearly, and nearest_neighbours converts the reference block by block.
    distance, index = nearest_neighbours(queries, train[rows])
    return distance / 255.0, rows[index]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def sample_statistics(
    samples: np.ndarray,
    heldout: np.ndarray,
    train: np.ndarray,
    max_items: int | None = 1000,
    max_train: int | None = 5000,
    heldout_recon: np.ndarray | None = None,
    max_faces: int | None = 500,
) -> dict[str, float]:
    """Diversity, memorisation and face-rate numbers of prior samples against real crops (all uint8 N x H x W x 3).

    Distances are L2 between images flattened to [0, 1] pixels (a 64x64x3 crop has 12288 values). Keys:

        sample_diversity, heldout_diversity   mean distance between two different samples / held-out crops
                                              (`mean_pairwise_distance`, 20,000 random pairs, seed 0)
        diversity_ratio                       sample / heldout: ~1 as varied as real frames, ~0 mode collapse
        sample_nn_train_distance              mean distance from a sample to its nearest training crop
        heldout_nn_train_distance             the same for held-out crops: how far a genuinely new frame is
        memorisation_ratio                    sample / heldout nn distance: << 1 suggests copied training frames
        sample_face_rate, heldout_face_rate   `face_detection_rate` of each

    With `heldout_recon` (the model's reconstructions of the held-out crops, as blurry as its samples) also
    recon_diversity, recon_nn_train_distance, recon_face_rate and memorisation_ratio_recon (sample / recon nn
    distance): the fairer reference for a VAE. A ratio whose reference is 0 is NaN.

    To bound the time, at most `max_items` samples, held-out crops (and reconstructions), `max_train` training
    crops and `max_faces` images per face rate are used, chosen by `spread_indices` (evenly over each set, the
    same every run). The Haar cascade costs ~5 ms an image, so 500 per set (a rate's standard error <= 0.022)
    keeps the defaults near 10 s on two busy cores; the distances over 1000 x 5000 crops take a few seconds.
    """
    sets = {"sample": samples, "heldout": heldout}
    if heldout_recon is not None:
        sets["recon"] = heldout_recon
    stats: dict[str, float] = {}
    for name, images in sets.items():
        one = image_set_statistics(images, train, max_items, max_train, max_faces, name=name)
        stats.update({f"{name}_{k}": v for k, v in one.items()})
    stats["diversity_ratio"] = _ratio(stats["sample_diversity"], stats["heldout_diversity"])
    stats["memorisation_ratio"] = _ratio(stats["sample_nn_train_distance"], stats["heldout_nn_train_distance"])
    if heldout_recon is not None:
        stats["memorisation_ratio_recon"] = _ratio(stats["sample_nn_train_distance"], stats["recon_nn_train_distance"])
    return stats


def image_set_statistics(
    images: np.ndarray,
    train: np.ndarray,
    max_items: int | None = 1000,
    max_train: int | None = 5000,
    max_faces: int | None = 500,
    name: str = "images",
) -> dict[str, float]:
    """diversity, nn_train_distance and face_rate of one set of uint8 crops, as `sample_statistics` defines them."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{name} images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    images = images[spread_indices(len(images), max_items)]
    return {
        "diversity": mean_pairwise_distance(images, max_pairs=20_000, seed=0) / 255.0,
        "nn_train_distance": float(np.mean(nearest_training_crops(images, train, max_train)[0])),
        "face_rate": face_detection_rate(images[spread_indices(len(images), max_faces)]),
    }
