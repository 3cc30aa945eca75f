"""Face verification benchmarks on disk: LFW-style ``pairs.txt`` and insightface ``.bin`` files.

``pairs.txt`` (LFW View 2 and the lists shipped with CALFW, CPLFW, ...):

* an optional header ``<folds> <pairs per fold>`` (LFW: ``10 300``);
* ``name i j``: same person, images ``name/name_000i.jpg`` and ``name/name_000j.jpg``;
* ``name1 i name2 j``: different people;
* or ``path1 path2 label`` with ``label`` 1 (same) or 0 (different), paths relative to the file;
  the identity of an image is the folder it sits in (``<name>/<image>``), as in a training
  image folder.

Image paths in the first two forms are looked up next to ``pairs.txt`` (``<dir>/<name>/``
or ``<dir>/images/<name>/``), with extension ``.jpg``, ``.png`` or ``.jpeg``.

``.bin`` (insightface's ``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...): a pickle of
``(list of encoded images, list of booleans)``, image ``2k`` and ``2k+1`` forming pair ``k``.
A pickle can run arbitrary code when loaded, so it is read by an unpickler that resolves no
global at all: only bytes, lists, tuples and booleans can come out of it, and anything else
is refused before any of it is used.

The pairs keep their file order, so the 10-fold protocol uses the benchmark's own folds.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.errors import TrainableInputError


class BenchmarkError(TrainableInputError):
    """A benchmark file that is missing, malformed or unsafe."""


@dataclass(frozen=True)
class PairBenchmark:
    """Images (uint8 (N, 3, S, S)) and the pairs over them, in file order.

    ``identity_names`` are the people the benchmark names (pairs.txt: in LFW form, or the folders
    its images sit in), for the
    train/evaluation overlap check; empty when the file does not name them (``.bin``).
    """

    name: str
    images: torch.Tensor
    left: np.ndarray
    right: np.ndarray
    label: np.ndarray
    identity_names: frozenset[str] = frozenset()
    image_identity: tuple[str, ...] = ()
    """Each image's person (a pair list: the folder it sits in); empty for a ``.bin``."""

    def __len__(self) -> int:
        return len(self.label)


# ---------------------------------------------------------------- pairs.txt
def _lfw_path(root: Path, name: str, number: str) -> Path:
    try:
        n = int(number)
    except ValueError:
        raise BenchmarkError(f"not a pair list: image number {number!r} is not an integer") from None
    for base in (root / name, root / "images" / name):
        for ext in (".jpg", ".png", ".jpeg"):
            p = base / f"{name}_{n:04d}{ext}"
            if p.is_file():
                return p
    raise BenchmarkError(f"image {name}_{n:04d} not found under {root}")


def read_pairs_txt(path: Path) -> tuple[list[Path], list[Path], np.ndarray, frozenset[str]]:
    """(left paths, right paths, labels, named identities) of a pair list."""
    path = Path(path)
    try:
        lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkError(f"benchmark {path}: cannot read a pair list ({err})") from None
    if lines and len(lines[0]) == 2 and all(t.isdigit() for t in lines[0]):
        lines = lines[1:]  # "<folds> <pairs per fold>"
    if not lines:
        raise BenchmarkError(f"benchmark {path}: no pairs")
    root, left, right, label, names = path.parent, [], [], [], set()
    for k, parts in enumerate(lines, start=1):
        try:
            if len(parts) == 3 and not parts[1].isdigit() and parts[2] not in ("0", "1"):
                raise BenchmarkError(
                    f"a 'path1 path2 label' line needs label 0 (different) or 1 (same), got {parts[2]!r}"
                )
            if len(parts) == 3 and parts[2] in ("0", "1") and not parts[1].isdigit():
                a, b = (Path(p) if Path(p).is_absolute() else root / p for p in parts[:2])
                for p in (a, b):
                    if not p.is_file():
                        raise BenchmarkError(f"image {p} not found")
                left.append(a), right.append(b), label.append(int(parts[2]))
                # the person is the folder an image sits in, as in a training image folder:
                # otherwise this form would name nobody and escape the overlap check
                names.update(p.parent.name for p in (a, b))
            elif len(parts) == 3:
                left.append(_lfw_path(root, parts[0], parts[1]))
                right.append(_lfw_path(root, parts[0], parts[2]))
                label.append(1)
                names.add(parts[0])
            elif len(parts) == 4:
                left.append(_lfw_path(root, parts[0], parts[1]))
                right.append(_lfw_path(root, parts[2], parts[3]))
                label.append(0)
                names.update((parts[0], parts[2]))
            else:
                raise BenchmarkError(
                    f"not a pair list: expected 'name i j', 'name1 i name2 j' or "
                    f"'path1 path2 0|1', got {' '.join(parts)!r}"
                )
        except BenchmarkError as err:
            raise BenchmarkError(f"benchmark {path}, pair {k}: {err}") from None
    return left, right, np.asarray(label, dtype=np.int64), frozenset(names)


# ---------------------------------------------------------------- .bin
class _DataOnlyUnpickler(pickle.Unpickler):
    """Resolves no global and no persistent id, so no callable can ever be reached."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle's hook
        raise pickle.UnpicklingError(f"refers to {module}.{name}; only bytes, lists and booleans are accepted")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("uses persistent ids; only bytes, lists and booleans are accepted")


def _check_plain(obj, depth: int = 0) -> None:
    if isinstance(obj, (bytes, bool)):
        return
    if isinstance(obj, (list, tuple)) and depth < 3:
        for item in obj:
            _check_plain(item, depth + 1)
        return
    raise pickle.UnpicklingError(f"holds a {type(obj).__name__}; only bytes, lists and booleans are accepted")


def read_bin(path: Path) -> tuple[list[bytes], list[bool]]:
    """(encoded images, is-same flags) of an insightface ``.bin``, read without running code."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # encoding="bytes": files written by Python 2 store images as str; read them as bytes
            obj = _DataOnlyUnpickler(f, encoding="bytes").load()
        _check_plain(obj)
    except OSError as err:
        raise BenchmarkError(f"benchmark {path}: {err.strerror or err}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        MemoryError,
        RecursionError,
    ) as err:
        raise BenchmarkError(f"benchmark {path}: refused: {err}") from None
    if not (
        isinstance(obj, (list, tuple))
        and len(obj) == 2
        and isinstance(obj[0], (list, tuple))
        and isinstance(obj[1], (list, tuple))
    ):
        raise BenchmarkError(f"benchmark {path}: not an insightface .bin (expected (images, issame))")
    images, issame = list(obj[0]), list(obj[1])
    if not all(isinstance(b, bytes) for b in images) or not all(isinstance(s, bool) for s in issame):
        raise BenchmarkError(f"benchmark {path}: not an insightface .bin (images must be bytes, flags booleans)")
    if len(images) != 2 * len(issame) or not issame:
        raise BenchmarkError(f"benchmark {path}: {len(images)} images for {len(issame)} pairs (need two per pair)")
    return images, issame


def _decode(data: bytes, size: int) -> torch.Tensor:
    from trainables.data.sources import image_errors, image_tensor, open_image

    try:
        with open_image(io.BytesIO(data)) as im:
            return image_tensor(im, size)
    except image_errors() as err:
        raise BenchmarkError(f"undecodable image in benchmark: {type(err).__name__}: {err}") from None


def load_benchmark(name: str, path: str | Path, *, size: int, verify: bool = False, log=None) -> PairBenchmark:
    """A ``.bin`` or pair list, its images decoded at ``size`` into the shared decoded-image
    cache (``trainables.data.image_cache``) and read from there: ``images`` is a memory map,
    not a copy. ``verify``/``log``: see ``image_cache.cached``."""
    import torch

    from trainables.data import image_cache

    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchmarkError(f"benchmark {name}: no such file {path}")
    if path.suffix == ".bin":

        def labels() -> tuple[int, list[bool]]:
            blobs, flags = read_bin(path)
            return len(blobs), flags

        # the flags from beside the cache: the file's encoded images are read only to build it
        n_images, issame = image_cache.bin_labels(path, labels)
        cache = image_cache.bin_images(path, size, lambda: read_bin(path)[0], n_images, verify=verify, log=log)
        if cache.failed:
            row, why = cache.failed[0]
            raise BenchmarkError(f"benchmark {name} ({path}): undecodable image {row} in benchmark: {why}")
        n = len(issame)
        return PairBenchmark(
            name,
            torch.from_numpy(cache.images),
            np.arange(0, 2 * n, 2),
            np.arange(1, 2 * n, 2),
            np.asarray(issame, dtype=np.int64),
        )
    left, right, label, names = read_pairs_txt(path)
    unique = sorted(set(left) | set(right))
    index = {p: i for i, p in enumerate(unique)}
    cache = image_cache.image_files([str(p) for p in unique], size, verify=verify, log=log)
    if cache.failed:  # a benchmark is not thinned out like training data: one bad image refuses it
        row, why = cache.failed[0]
        raise BenchmarkError(f"benchmark {name} ({path}): cannot read image {unique[row]}: {why}")
    return PairBenchmark(
        name,
        torch.from_numpy(cache.images),
        np.asarray([index[p] for p in left]),
        np.asarray([index[p] for p in right]),
        label,
        names,
        tuple(p.parent.name for p in unique),
    )
