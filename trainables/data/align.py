"""5-point face alignment (AdaptFace notes 2.3) for users with raw photos: each image warped by
the similarity transform (rotation, uniform scale, translation) that best maps its five
landmarks, in the least-squares sense (Umeyama 1991), onto the standard template, into an
aligned folder the trainables read (``train_data``, pair lists, ``embed``).

The template is ArcFace's (insightface ``face_align.arcface_dst``), for 112 x 112 crops:
left eye, right eye, nose tip, left and right mouth corners, in the image's pixel
coordinates (x right, y down; "left" as the image shows it). Another crop size scales it
uniformly (``--size 224`` for a ViT-B's input). The transform is scikit-image's
``SimilarityTransform`` (its least-squares estimate), the warp its ``warp`` with bilinear
interpolation and black outside the photo.

The landmarks come from a CSV, one row per image: ``path`` (relative to the images' root)
and ``left_eye_x, left_eye_y, right_eye_x, right_eye_y, nose_x, nose_y, mouth_left_x,
mouth_left_y, mouth_right_x, mouth_right_y`` (any detector's five points, e.g.
insightface's RetinaFace or MTCNN, run wherever its weights are). Images are read, warped
and written one at a time: memory does not grow with the folder.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from trainables.errors import TrainableInputError

#: ArcFace's five reference points in a 112 x 112 crop (insightface, ``arcface_dst``).
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
COLUMNS = ("path", *(f"{p}_{axis}" for p in POINTS for axis in ("x", "y")))
SKIPPED_FILE = "skipped_alignment.csv"


class AlignError(TrainableInputError):
    """A landmarks file or an output folder that cannot be used (one line)."""


def template(size: int) -> np.ndarray:
    """The five reference points for a ``size`` x ``size`` crop (112: ArcFace's own)."""
    return TEMPLATE_112 * (size / 112.0)


def similarity(landmarks: np.ndarray, size: int):
    """The similarity transform taking ``landmarks`` (5, 2) onto the template of ``size``;
    None when the points cannot define one (coincident points)."""
    from skimage.transform import SimilarityTransform

    points = np.asarray(landmarks, dtype=np.float64)
    if not np.isfinite(points).all() or np.ptp(points, axis=0).max() < 1e-6:
        return None
    found = SimilarityTransform.from_estimate(points, template(size))
    return found if isinstance(found, SimilarityTransform) else None  # else skimage's FailedEstimation


def align_image(image: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """``image`` (H, W, 3 uint8) warped so that its landmarks land on the template: a
    ``size`` x ``size`` uint8 crop (None when the landmarks define no transform)."""
    from skimage.transform import warp

    transform = similarity(landmarks, size)
    if transform is None:
        return None
    out = warp(
        image, transform.inverse, output_shape=(size, size), order=1, mode="constant", cval=0.0, preserve_range=True
    )
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Aligned:
    written: int
    skipped: list[tuple[str, str]]
    out: Path


def read_landmarks(csv_path: Path) -> list[tuple[str, np.ndarray]]:
    """(path, landmarks (5, 2)) of each row; refused in one line when the file is not such a
    table (missing columns, a value that is not a number, a path given twice)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise AlignError(f"{csv_path}: no such landmarks file")
    rows: list[tuple[str, np.ndarray]] = []
    with csv_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise AlignError(f"{csv_path}: missing column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            try:
                values = [float(row[c]) for c in COLUMNS[1:]]
            except (TypeError, ValueError):
                raise AlignError(f"{csv_path}, line {line}: a landmark coordinate is not a number") from None
            path = (row["path"] or "").strip()
            if not path or Path(path).is_absolute() or ".." in Path(path).parts:
                raise AlignError(f"{csv_path}, line {line}: path {path!r} must be relative to the images' folder")
            if path in seen:
                raise AlignError(f"{csv_path}, line {line}: {path} is listed twice")
            seen.add(path)
            rows.append((path, np.asarray(values).reshape(5, 2)))
    if not rows:
        raise AlignError(f"{csv_path}: no rows")
    return rows


def align_folder(
    csv_path: Path, images: Path, out: Path, *, size: int = 112, log: Callable[[str], None] = print
) -> Aligned:
    """Align every image the CSV lists into ``out`` (a new or empty folder; the same relative
    paths, PNG for lossless crops unless the source was a JPEG, then JPEG at quality 95). An
    image that cannot be read, or whose landmarks define no transform, is skipped and listed
    with its reason in ``out/skipped_alignment.csv``."""
    from PIL import Image, UnidentifiedImageError

    if size < 16 or size > 1024:
        raise AlignError(f"--size {size}: expected a crop side between 16 and 1024 pixels")
    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise AlignError(f"{images}: no such folder of images")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AlignError(f"{out}: exists and is not an empty folder; give a new one (nothing is overwritten)")
    rows = read_landmarks(csv_path)
    out.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str]] = []
    written = 0
    for path, points in rows:
        source = images / path
        try:
            with Image.open(source) as im:
                pixels = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as err:
            skipped.append((path, f"unreadable: {str(err).splitlines()[0] if str(err) else type(err).__name__}"))
            continue
        crop = align_image(pixels, points, size)
        if crop is None:
            skipped.append((path, "the five landmarks define no similarity transform (coincident points)"))
            continue
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix.lower() in (".jpg", ".jpeg"):
            Image.fromarray(crop).save(target, quality=95)
        else:
            Image.fromarray(crop).save(target.with_suffix(".png"))
        written += 1
    if skipped:
        with (out / SKIPPED_FILE).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "reason"])
            w.writerows(skipped)
    log(
        f"aligned {written} of {len(rows)} images to {size}x{size} in {out}"
        + (f"; skipped {len(skipped)} (listed in {out / SKIPPED_FILE})" if skipped else "")
    )
    return Aligned(written, skipped, out)
