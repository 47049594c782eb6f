"""`python -m facevae.bench alignment`: how steady and how accurate each face alignment is, against the truth.

Frames of the demo person are rendered at 7.5 fps (every 4th of 30) with the demo's drifting pose, scale, place and
light, so the true eye centres of every frame are known (facevae.data.demo_face.eye_centres). For each
`data.extraction.align` method it reports, in pixels of the 64-pixel crop: how far the true eyes stray from their mean
place (RMS), how much that changes from one frame to the next (jitter), the spread of the eye line's roll and of the
face's scale; then the milliseconds of alignment per frame (CPU); and a shift test: at several moments, the crop of the
neutral frame moved 4 pixels against the crop of the same moment smiling (RMS grey-level distance to the unmoved frame's
crop; a steady alignment keeps the first far below the second). With --ckpt, the same test in a trained model's codes
for the method it was trained on: the distance of the shifted crop's code (encoder mean) from the unmoved one's against
the smiling crop's, which the expression analyses need far apart the other way round.
"""

from __future__ import annotations

import argparse
import copy
import time

import cv2
import numpy as np

from facevae.data.align import ALIGN_METHODS, AlignParams, FaceAligner, cut, source_to_crop
from facevae.data.demo_face import eye_centres, render_frame
from facevae.data.demo_factors import demo_factors
from facevae.data.faces import CropParams, FaceTracker

SIZE = 64


def bench_alignment(args: argparse.Namespace) -> None:
    factors = demo_factors(args.frames * 4, 30.0, seed=args.seed).iloc[::4]
    frames = [(row["frame"] / 30.0, row.to_dict()) for _, row in factors.iterrows()]
    rendered = [render_frame(f) for _, f in frames]
    greys = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in rendered]
    print(f"{args.frames} demo frames at 7.5 fps, seed {args.seed}; crop pixels of a {SIZE}-pixel crop")
    print()
    print(
        "| data.extraction.align | eye RMS px | jitter px | roll sd deg | scale sd % | ms/frame | shift 4 px / smile |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    by_method = {}
    for method in ALIGN_METHODS:
        squares, ms = _align(frames, greys, method)
        eyes = np.array([eye_centres(f) @ source_to_crop(sq, SIZE)[:, :2].T + source_to_crop(sq, SIZE)[:, 2]
                         for (_, f), sq in zip(frames, squares, strict=True)])  # fmt: skip
        offset, line = eyes - eyes.mean(axis=0), eyes[:, 1] - eyes[:, 0]
        rms = np.sqrt((offset**2).sum(-1).mean())
        jitter = np.sqrt((np.diff(offset, axis=0) ** 2).sum(-1).mean())
        roll = np.degrees(np.arctan2(line[:, 1], line[:, 0])).std()
        scale = 100 * np.log(np.hypot(*line.T)).std()
        crops = _shift_crops(frames, greys, method)
        shift, smile = _shift_distances(crops)
        print(
            f"| {method} | {rms:.2f} | {jitter:.2f} | {roll:.2f} | {scale:.2f} | {ms:.2f} | {shift:.1f} / {smile:.1f} |"
        )
        by_method[method] = crops
    if args.ckpt:
        _code_shift_test(args.ckpt, by_method)


def _code_shift_test(ckpt: str, by_method: dict[str, list[list[np.ndarray]]]) -> None:
    """The shift test in the codes of the checkpoint's model, on crops cut the way its training crops were."""
    import torch

    from facevae.core.checkpoint import load_run
    from facevae.models.inference import encode_images

    run = load_run(ckpt, torch.device("cpu"))
    data = run.config["data"]
    method = data.get("extraction", data).get("align", "none")  # a checkpoint from before the groups: flat keys
    moments = by_method[method]
    codes = [encode_images(run.model, np.stack(c).round().clip(0, 255).astype(np.uint8))[0] for c in moments]
    shift, smile = _shift_distances(codes)
    print(
        f"\nIn the codes of {ckpt} (trained on align={method} crops), mean over {len(moments)} moments: the neutral "
        f"frame moved 4 px lies {shift:.2f} from the unmoved one's code, the same moment smiling {smile:.2f}"
    )


def _align(frames, greys, method: str) -> tuple[list, float]:
    tracker, aligner = FaceTracker(), FaceAligner(AlignParams(method), CropParams())
    squares, spent = [], 0.0
    for (t, _), grey in zip(frames, greys, strict=True):
        box = tracker.update(grey)
        start = time.process_time()
        squares += [sq for _, sq, _ in aligner.push(None, t, grey, box)]
        spent += time.process_time() - start
    squares += [sq for _, sq, _ in aligner.flush()]
    return squares, 1000 * spent / len(frames)


def _shift_crops(frames, greys, method: str, moments: int = 6) -> list[list[np.ndarray]]:
    """At each of `moments` moments, the crops (float) of the neutral frame, the same moment smiling, and the neutral
    frame moved 4 pixels right and 4 down, each cut as the next frame of the video would be."""
    out = []
    for start in np.linspace(0, len(frames) - 33, moments).astype(int):
        tracker, aligner = FaceTracker(), FaceAligner(AlignParams(method), CropParams(), causal=True)
        for (t, _), grey in zip(frames[start : start + 32], greys[start : start + 32], strict=True):
            list(aligner.push(None, t, grey, tracker.update(grey)))
        t, moment = frames[start + 32][0], {**frames[start + 32][1], "smile": 0.0}
        neutral = render_frame(moment)
        variants = [neutral, render_frame({**moment, "smile": 0.9}), _moved(neutral, 4, 0), _moved(neutral, 0, 4)]
        out.append([_next_crop(tracker, aligner, rgb, t) for rgb in variants])
    return out


def _shift_distances(moments) -> tuple[float, float]:
    """Mean over moments of the RMS distance from the neutral one of a 4-pixel shift (the larger of right and down)
    and of a smile: crops or codes alike."""
    shifts, smiles = [], []
    for neutral, smiling, *moved in (np.asarray(m, np.float64) for m in moments):
        smiles.append(np.sqrt(((smiling - neutral) ** 2).mean()))
        shifts.append(max(np.sqrt(((m - neutral) ** 2).mean()) for m in moved))
    return float(np.mean(shifts)), float(np.mean(smiles))


def _moved(rgb: np.ndarray, dx: float, dy: float) -> np.ndarray:
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(rgb, shift, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def _next_crop(tracker: FaceTracker, aligner: FaceAligner, rgb: np.ndarray, t: float) -> np.ndarray:
    """The crop this frame would get as the next one of the video, leaving the tracker and aligner as they were."""
    tracker, aligner = copy.copy(tracker), copy.copy(aligner)
    aligner._window = copy.copy(aligner._window)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ((_, square, _),) = aligner.push(None, t, grey, tracker.update(grey))
    return cut(rgb, square, SIZE).astype(np.float64)
