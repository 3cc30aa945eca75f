"""5-point alignment against the standard template, on hand-made cases: landmarks already on
the template change nothing; a photo made by a known rotation, scale and shift of a template
crop is brought back onto the template; the folder the trainables read; refusals."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from orchestrator.cli import main
from trainables.data.align import COLUMNS, TEMPLATE_112, align_folder, align_image, similarity, template

COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], dtype=np.uint8)


def _dots(points: np.ndarray, shape: tuple[int, int], radius: float = 3.0) -> np.ndarray:
    """A black image with a coloured disc at each of the five points (x, y)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros((*shape, 3), dtype=np.uint8)
    for (x, y), color in zip(points, COLORS):
        image[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = color
    return image


def _centres(image: np.ndarray) -> np.ndarray:
    """Where each coloured disc lies (the centroid of the pixels nearest its colour)."""
    out = []
    for color in COLORS:
        near = np.abs(image.astype(int) - color.astype(int)).sum(axis=2) < 120
        ys, xs = np.nonzero(near)
        out.append([xs.mean(), ys.mean()])
    return np.asarray(out)


def test_the_template_is_arcfaces_and_scales_with_the_crop():
    assert template(112) == pytest.approx(TEMPLATE_112)
    assert TEMPLATE_112[0] == pytest.approx([38.2946, 51.6963]) and TEMPLATE_112[4] == pytest.approx([70.7299, 92.2041])
    assert template(224) == pytest.approx(2 * TEMPLATE_112)


def test_landmarks_on_the_template_leave_the_crop_as_it_is():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    t = similarity(TEMPLATE_112, 112)
    assert t.params == pytest.approx(np.eye(3), abs=1e-9)
    assert np.array_equal(align_image(image, TEMPLATE_112, 112), image)


@pytest.mark.parametrize("angle, scale, shift", [(30.0, 2.0, (40.0, 25.0)), (-12.0, 0.8, (5.0, 60.0))])
def test_a_rotated_scaled_shifted_face_is_brought_back_onto_the_template(angle, scale, shift):
    """The photo: the template's five dots under a known similarity (x' = s R x + t). The
    estimated transform is that one's inverse, and the aligned crop has its dots on the
    template (to within a pixel: the discs are drawn on a pixel grid)."""
    a = math.radians(angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    photo_points = scale * TEMPLATE_112 @ rot.T + np.asarray(shift)
    photo = _dots(photo_points, (320, 320), radius=3.0 * scale)
    t = similarity(photo_points, 112)
    expected = np.eye(3)
    expected[:2, :2], expected[:2, 2] = rot.T / scale, -rot.T @ np.asarray(shift) / scale
    assert t.params == pytest.approx(expected, abs=1e-9)
    aligned = align_image(photo, photo_points, 112)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    assert _centres(aligned) == pytest.approx(TEMPLATE_112, abs=1.0)
    at_224 = align_image(photo, photo_points, 224)
    assert _centres(at_224) == pytest.approx(template(224), abs=1.5)


def _write_csv(path, rows):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for name, points in rows:
            w.writerow([name, *np.asarray(points).ravel()])


def test_a_folder_is_aligned_into_identity_folders_the_trainables_read(tmp_path):
    from trainables.data.sources import read_image_folder

    raw = tmp_path / "raw"
    rows = []
    for person in ("ann", "bob"):
        for k in range(2):
            (raw / person).mkdir(parents=True, exist_ok=True)
            points = 1.5 * TEMPLATE_112 + np.array([10.0 * k, 20.0])
            Image.fromarray(_dots(points, (240, 240), radius=4.5)).save(raw / person / f"{k}.jpg", quality=98)
            rows.append((f"{person}/{k}.jpg", points))
    (raw / "bob" / "broken.jpg").write_bytes(b"not an image")
    rows.append(("bob/broken.jpg", TEMPLATE_112))
    rows.append(("ann/same.jpg", np.ones((5, 2))))  # five coincident points: no transform
    Image.fromarray(np.zeros((50, 50, 3), dtype=np.uint8)).save(raw / "ann" / "same.jpg")
    _write_csv(tmp_path / "lm.csv", rows)
    done = align_folder(tmp_path / "lm.csv", raw, tmp_path / "aligned", log=lambda _: None)
    assert done.written == 4 and [p for p, _ in done.skipped] == ["bob/broken.jpg", "ann/same.jpg"]
    with Image.open(tmp_path / "aligned" / "ann" / "1.jpg") as im:
        assert im.size == (112, 112)
        assert _centres(np.asarray(im.convert("RGB"))) == pytest.approx(TEMPLATE_112, abs=1.5)
    listed = read_image_folder(tmp_path / "aligned")
    assert len(listed) == 4 and listed.names() == {"ann", "bob"}
    assert "bob/broken.jpg" in (tmp_path / "aligned" / "skipped_alignment.csv").read_text()


def test_bad_landmark_files_and_a_used_output_folder_are_refused_in_one_line(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    Image.fromarray(np.zeros((60, 60, 3), dtype=np.uint8)).save(raw / "a.png")
    (tmp_path / "short.csv").write_text("path,left_eye_x\na.png,1\n")
    (tmp_path / "nan.csv").write_text(",".join(COLUMNS) + "\na.png," + ",".join(["x"] * 10) + "\n")
    _write_csv(tmp_path / "ok.csv", [("a.png", TEMPLATE_112 / 2)])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    cases = [
        (
            ["align", str(tmp_path / "short.csv"), str(raw), "--out", str(tmp_path / "o1")],
            "missing column(s) left_eye_y",
        ),
        (
            ["align", str(tmp_path / "nan.csv"), str(raw), "--out", str(tmp_path / "o2")],
            "line 2: a landmark coordinate",
        ),
        (["align", str(tmp_path / "ok.csv"), str(raw), "--out", str(tmp_path / "used")], "not an empty folder"),
        (
            ["align", str(tmp_path / "ok.csv"), str(tmp_path / "nowhere"), "--out", str(tmp_path / "o3")],
            "no such folder",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine" and not (tmp_path / "o1").exists()
    assert main(["align", str(tmp_path / "ok.csv"), str(raw), "--out", str(tmp_path / "o4"), "--size", "224"]) == 0
    assert "aligned 1 of 1 images to 224x224" in capsys.readouterr().out
    with Image.open(tmp_path / "o4" / "a.png") as im:
        assert im.size == (224, 224)
