"""Vectorised renderer of synthetic face-like images (numpy only).

A face is a handful of soft-edged shapes (face ellipse, hair, ears, eyes, brows, nose,
mouth, an optional mark and beard) whose geometry and colours come from a per-identity
parameter vector in [0, 1]; pose, expression, light and background vary per image.
Besides the visible RGB image the renderer returns a "heat" map of the same geometry
(skin warm, hair and background cool), from which the thermal-like domain is made.

No library draws parametric faces, so this is written by hand; it stays vectorised over
images so that thousands of 32 px faces take well under a second.
"""

from __future__ import annotations

import numpy as np

#: Number of identity parameters (columns of the identity matrix).
N_IDENTITY_PARAMS = 26
#: Number of per-image nuisance parameters.
N_NUISANCE_PARAMS = 10


def _lerp(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return lo + (hi - lo) * p


def _soft(signed_distance: np.ndarray, edge: float) -> np.ndarray:
    """Coverage of a shape from its signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(signed_distance / edge, -30.0, 30.0)))


def _ellipse(x, y, cx, cy, rx, ry, edge):
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return _soft((r - 1.0) * np.minimum(rx, ry), edge)


def _col(a: np.ndarray) -> np.ndarray:
    """(N,) -> (N, 1, 1) so that per-image values broadcast over pixels."""
    return a[:, None, None]


def render(identity: np.ndarray, nuisance: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Render faces.

    Args:
        identity: (N, N_IDENTITY_PARAMS) identity parameters in [0, 1], one row per image.
        nuisance: (N, N_NUISANCE_PARAMS) per-image parameters in [0, 1].
        resolution: side of the square image in pixels.

    Returns:
        rgb: (N, 3, R, R) float32 in [0, 1]; heat: (N, R, R) float32 in [0, 1].
    """
    n = identity.shape[0]
    p = [_col(identity[:, k].astype(np.float32)) for k in range(N_IDENTITY_PARAMS)]
    q = [_col(nuisance[:, k].astype(np.float32)) for k in range(N_NUISANCE_PARAMS)]
    edge = 0.6 / resolution

    # Pixel grid centred on 0, then the inverse of each image's pose (shift, scale, roll).
    g = (np.arange(resolution, dtype=np.float32) + 0.5) / resolution - 0.5
    gy, gx = np.meshgrid(g, g, indexing="ij")
    gx, gy = gx[None], gy[None]
    angle = _lerp(q[0], -0.15, 0.15)
    scale = _lerp(q[1], 0.93, 1.07)
    sx, sy = _lerp(q[2], -0.04, 0.04), _lerp(q[3], -0.04, 0.04)
    c, s = np.cos(angle), np.sin(angle)
    x = (c * (gx - sx) + s * (gy - sy)) / scale
    y = (-s * (gx - sx) + c * (gy - sy)) / scale
    y = y + 0.5  # face coordinates: y from 0 (top) to 1 (bottom), x centred on 0

    # Identity geometry.
    frx, fry, fcy = _lerp(p[0], 0.25, 0.35), _lerp(p[1], 0.33, 0.43), 0.52
    tone, redness = p[2], p[3]
    skin = np.stack(
        [
            _lerp(tone, 0.38, 0.97) + 0.06 * redness,
            _lerp(tone, 0.24, 0.80),
            _lerp(tone, 0.16, 0.70) - 0.04 * redness,
        ]
    )
    eye_y, eye_dx, eye_r = _lerp(p[4], 0.38, 0.48), _lerp(p[5], 0.09, 0.16), _lerp(p[6], 0.028, 0.05)
    iris = np.stack([_lerp(p[7], 0.35, 0.10), _lerp(p[7], 0.20, 0.45), _lerp(p[7], 0.10, 0.70)])
    brow_t, brow_tilt = _lerp(p[8], 0.010, 0.028), _lerp(p[9], -0.05, 0.05)
    nose_len, nose_w = _lerp(p[10], 0.07, 0.16), _lerp(p[11], 0.018, 0.045)
    mouth_y, mouth_w, mouth_t = _lerp(p[12], 0.64, 0.75), _lerp(p[13], 0.06, 0.15), _lerp(p[14], 0.010, 0.028)
    lip = np.stack([_lerp(p[15], 0.55, 0.85), _lerp(p[15], 0.30, 0.25), _lerp(p[15], 0.30, 0.28)])
    hair_h = _lerp(p[16], 0.02, 0.30)
    hair_tone = p[17]
    hair = np.stack([_lerp(hair_tone, 0.08, 0.75), _lerp(hair_tone, 0.06, 0.55), _lerp(hair_tone, 0.05, 0.25)])
    mark_x, mark_y = _lerp(p[18], -0.18, 0.18), _lerp(p[19], 0.42, 0.78)
    mark_r = np.where(p[20] > 0.35, _lerp(p[20], 0.0, 0.035), 0.0)
    beard = np.clip((p[21] - 0.55) / 0.45, 0.0, 1.0)
    tex_fx, tex_fy, tex_ph = _lerp(p[22], 6.0, 16.0), _lerp(p[23], 6.0, 16.0), p[24] * 6.283
    ear_r = _lerp(p[25], 0.035, 0.07)

    # Per-image expression, light and background.
    smile = _lerp(q[4], -0.6, 1.0)
    openness = _lerp(q[5], 0.55, 1.0)
    light_a = q[6] * 6.283
    light_k = _lerp(q[7], 0.0, 0.25)
    bg = np.stack([q[8], _lerp(q[9], 0.2, 0.8) * q[8] + 0.1, 1.0 - q[8] * 0.7])

    face = _ellipse(x, y, 0.0, fcy, frx, fry, edge)
    head_back = _ellipse(x, y, 0.0, fcy - 0.05, frx * 1.12, fry * 1.05, edge) * _soft(
        y - (fcy - fry + hair_h + 0.12), edge
    )
    ears = np.maximum(
        _ellipse(x, y, -frx, eye_y + 0.04, ear_r, ear_r * 1.5, edge),
        _ellipse(x, y, frx, eye_y + 0.04, ear_r, ear_r * 1.5, edge),
    )
    fringe = face * _soft(y - (fcy - fry + hair_h), edge)
    eyes_white = _ellipse(x, y, -eye_dx, eye_y, eye_r * 1.5, eye_r * openness, edge) + _ellipse(
        x, y, eye_dx, eye_y, eye_r * 1.5, eye_r * openness, edge
    )
    irises = _ellipse(x, y, -eye_dx, eye_y, eye_r * 0.8, eye_r * 0.8 * openness, edge) + _ellipse(
        x, y, eye_dx, eye_y, eye_r * 0.8, eye_r * 0.8 * openness, edge
    )
    brow_y = eye_y - eye_r - 0.03
    brows = np.zeros_like(face)
    for side in (-1.0, 1.0):
        by = brow_y + side * brow_tilt * (x - side * eye_dx) / 0.08
        d = np.maximum(np.abs(y - by) - brow_t, np.abs(x - side * eye_dx) - eye_r * 1.8)
        brows = np.maximum(brows, _soft(d, edge))
    nose = _ellipse(x, y, 0.0, eye_y + 0.03 + nose_len * 0.6, nose_w, nose_len * 0.6, edge)
    mouth_curve = mouth_y - smile * 0.9 * (mouth_w**2 - np.minimum(x**2, mouth_w**2)) / mouth_w
    mouth = _soft(np.maximum(np.abs(y - mouth_curve) - mouth_t, np.abs(x) - mouth_w), edge)
    mark = np.where(
        mark_r > 0, _ellipse(x, y, mark_x, mark_y, np.maximum(mark_r, 1e-3), np.maximum(mark_r, 1e-3), edge), 0.0
    )
    beard_m = face * beard * _soft(-(y - (mouth_y - 0.03)), edge)
    texture = 0.07 * np.sin(tex_fx * x + tex_ph) * np.sin(tex_fy * y + 0.5 * tex_ph)

    def over(base, mask, colour):
        base += mask[None] * (colour - base)  # alpha compositing, in place
        return base

    img = np.broadcast_to(bg, (3, n, resolution, resolution)).astype(np.float32)  # a copy
    img = over(img, head_back, hair)
    img = over(img, ears, skin * 0.9)
    img = over(img, face, skin + texture[None])
    img = over(img, nose, skin * 0.82)
    img = over(img, beard_m * 0.75, hair * 0.8)
    img = over(img, fringe, hair)
    img = over(img, np.clip(eyes_white, 0, 1) * face, np.full_like(skin, 0.95))
    img = over(img, np.clip(irises, 0, 1) * face, iris)
    img = over(img, brows * face, hair * 0.7)
    img = over(img, mouth * face, lip)
    img = over(img, mark * face, np.full_like(skin, 0.15))
    shade = 1.0 + light_k * (np.cos(light_a) * x * 2.0 + np.sin(light_a) * (y - 0.5) * 2.0)
    img = np.clip(img * shade[None], 0.0, 1.0)

    # Heat: skin warm, eyes and mouth warmest, nose tip and ears cooler, hair insulating.
    heat = np.full_like(face, 0.12) + 0.05 * q[8]
    heat = heat * (1 - head_back) + 0.32 * head_back
    heat = heat * (1 - ears) + 0.55 * ears
    heat = heat * (1 - face) + (0.72 + 0.08 * redness) * face
    heat = heat * (1 - nose * face) + 0.58 * nose * face
    heat = heat * (1 - beard_m * 0.75) + 0.48 * beard_m * 0.75
    heat = heat * (1 - fringe) + 0.34 * fringe
    heat = heat * (1 - np.clip(eyes_white, 0, 1) * face) + 0.93 * np.clip(eyes_white, 0, 1) * face
    heat = heat * (1 - mouth * face) + 0.86 * mouth * face
    return img.transpose(1, 0, 2, 3).astype(np.float32), heat.astype(np.float32)
