"""Imaging domains of synthfaces: each turns a rendered face into one way of seeing it.

The stand-in backbone is pre-trained on ``visible`` only; every other domain removes or
distorts some of the cues it learned (colour and texture for ``thermal``, fine detail for
``low_quality``, shading for ``harsh_light``, the eyes or the mouth and chin for
``occluded``), so that adapting to them is a real task.
Strengths are calibrated so that none is trivial and none falls to chance: the stand-in
verifies its own domain above 0.9, the others between chance and 0.85, and the cross-domain
pairs worse still but above chance (``test_standin_calibration`` in
``tests/trainables_tests/test_synthfaces.py`` holds it to that).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import ndimage

DomainFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def _noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return img + rng.normal(0.0, sigma, size=img.shape).astype(np.float32)


def visible(rgb: np.ndarray, heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _noise(rgb, 0.015, rng)


def thermal(rgb: np.ndarray, heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Grey heat map of the face's geometry, softly blurred, with a trace of luminance."""
    luminance = rgb.mean(axis=1)
    grey = 0.75 * heat + 0.25 * luminance
    grey = ndimage.gaussian_filter(grey, sigma=(0, 0.7, 0.7))
    grey = _noise(grey, 0.03, rng)
    return np.repeat(grey[:, None], 3, axis=1)


def low_quality(rgb: np.ndarray, heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down-sampled to a quarter of the side, blurred back up, washed out and noisy."""
    n, _, r, _ = rgb.shape
    small = r // 4
    down = rgb.reshape(n, 3, small, r // small, small, r // small).mean(axis=(3, 5))
    up = ndimage.zoom(down, (1, 1, r / small, r / small), order=1)
    up = ndimage.gaussian_filter(up, sigma=(0, 0, 0.6, 0.6))
    washed = 0.45 + 0.65 * (up - 0.5) + rng.uniform(-0.06, 0.06, size=(n, 3, 1, 1)).astype(np.float32)
    return _noise(washed, 0.035, rng)


def harsh_light(rgb: np.ndarray, heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One strong side light: half the face in deep shadow, the other over-exposed."""
    n, _, r, _ = rgb.shape
    g = (np.arange(r, dtype=np.float32) + 0.5) / r - 0.5
    gy, gx = np.meshgrid(g, g, indexing="ij")
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1, 1)).astype(np.float32)
    ramp = np.cos(angle) * gx[None] + np.sin(angle) * gy[None]
    light = 0.4 + 1.2 / (1.0 + np.exp(-ramp * 7.0))
    lit = np.clip(rgb * light[:, None], 0.0, 1.0) ** 0.9
    return _noise(lit, 0.02, rng)


def occluded(rgb: np.ndarray, heat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sunglasses or a face mask: an opaque band over the eyes or over mouth and chin."""
    n, _, r, _ = rgb.shape
    y = (np.arange(r, dtype=np.float32) + 0.5) / r
    mask_kind = rng.random(n) < 0.5  # True: mask over the lower face; False: glasses over the eyes
    centre = np.where(mask_kind, rng.uniform(0.68, 0.76, n), rng.uniform(0.38, 0.46, n)).astype(np.float32)
    half = np.where(mask_kind, rng.uniform(0.12, 0.16, n), rng.uniform(0.06, 0.09, n)).astype(np.float32)
    band = 1.0 / (1.0 + np.exp((np.abs(y[None] - centre[:, None]) - half[:, None]) * r))  # (n, r) soft rows
    x = (np.arange(r, dtype=np.float32) + 0.5) / r
    width = 1.0 / (1.0 + np.exp((np.abs(x - 0.5) - 0.36) * r))  # the band spans the face, not the frame
    cover = band[:, :, None] * width[None, None, :]  # (n, r, r)
    colour = np.where(mask_kind[:, None], rng.uniform(0.55, 0.95, (n, 3)), rng.uniform(0.02, 0.15, (n, 3)))
    out = rgb * (1 - cover[:, None]) + colour.astype(np.float32)[:, :, None, None] * cover[:, None]
    return _noise(out, 0.015, rng)


DOMAINS: dict[str, DomainFn] = {
    "visible": visible,
    "thermal": thermal,
    "low_quality": low_quality,
    "harsh_light": harsh_light,
    "occluded": occluded,
}
