"""Opening and checking image files without torch: what the decoded-image cache's worker
processes import (a spawned worker that imported torch would spend seconds doing so)."""

from __future__ import annotations

import io
import os

import numpy as np


# PIL's own guard against decompression bombs: it refuses images over 2 x MAX_IMAGE_PIXELS
# (about 179 M pixels) and only warns between 1x and 2x; no face image comes near 89 M
# pixels, so the warning is an error here too (``open_image``).
def open_image(source):
    """``PIL.Image.open`` that raises ``PIL.Image.DecompressionBombError`` for any image PIL
    would warn about, before decoding a pixel (the header's size is checked on open)."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(source)
        except Image.DecompressionBombWarning as w:
            raise Image.DecompressionBombError(str(w)) from None


def image_errors() -> tuple[type[BaseException], ...]:
    """What opening or decoding a bad image raises (damaged, not an image, a decompression bomb)."""
    from PIL import Image, UnidentifiedImageError

    return (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


def image_reason(err: BaseException) -> str:
    """The one line a skipped image's reason is."""
    return f"{type(err).__name__}: {err}".splitlines()[0][:200]


def _stat_problem(path: str) -> str | None:
    try:
        size = os.stat(path).st_size
    except OSError as err:
        return f"cannot be opened: {err.strerror} (a broken link or a link loop)"
    return "empty file" if size == 0 else None


def file_problem(path: str) -> str | None:
    """Why an image file cannot be used before its pixels are decoded, or None: a broken link
    or link loop, an empty file, or a structure PIL's ``verify`` refuses (for PNG the checksums
    too; a decompression bomb by its header). A full decode then catches truncated data that
    ``verify`` lets through (``_image_problem``, and the decoded-image cache as it decodes)."""
    why = _stat_problem(path)
    if why is not None:
        return why
    try:
        with open_image(path) as im:
            im.verify()
    except image_errors() as err:
        return image_reason(err)
    return None


def _pixels(im, size: int) -> np.ndarray:
    """uint8 (3, size, size) of an open PIL image: RGB, resized bilinearly when its size differs."""
    im = im.convert("RGB")
    if im.size != (size, size):
        from PIL import Image

        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


def decode(data: bytes | str, size: int) -> np.ndarray:
    """uint8 (3, size, size) of an encoded image or an image file: RGB, resized bilinearly
    when its size differs; exactly what ``trainables.data.sources.image_tensor`` gives."""
    with open_image(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
        return _pixels(im, size)


def checked_decode(item: bytes | str, size: int) -> tuple[np.ndarray | None, str]:
    """(``decode(item, size)``, "") or (None, why it cannot be used): for a file, what
    ``file_problem`` and a full decode find (the same reasons), opening it once where PIL's
    ``verify`` checks nothing for its format (JPEG: ``ImageFile.verify`` only closes the file)."""
    from PIL import ImageFile

    try:
        if isinstance(item, bytes):
            return decode(item, size), ""
        why = _stat_problem(item)
        if why is not None:
            return None, why
        with open_image(item) as im:
            if type(im).verify is ImageFile.ImageFile.verify:
                return _pixels(im, size), ""
            im.verify()
        with open_image(item) as im:
            return _pixels(im, size), ""
    except image_errors() as err:
        return None, image_reason(err)
