"""One decoded-image cache per image source, shared by every trial of every study.

A study's trials read the same images: its training folder, its validation identities, its
benchmarks. Decoding them in every trial (160,000 JPEGs at the AdaptFace notes' scale) and
holding them in every trial's memory (about 24 GB of uint8 at 224 px per trial) does not
scale. Here each source is decoded once, at the backbone's input size, into a ``.npy`` file
of uint8 (N, 3, S, S), by every CPU of the machine (processes), and read by trials through a
copy-on-write memory map: the pages come from the operating system's page cache, shared by
every trial on the machine (several packed on one GPU included); a trial's memory holds a
batch, not the data set.

* Keyed by the source's content as the file system describes it (every path with its size
  and modification time; a ``.bin`` by its own) and the preprocessing (size, RGB, bilinear
  resize, the cache version): an edited image makes a new cache, never a stale row.
* Built in a temporary folder and renamed into place (atomic), under a file lock: two
  studies that start together build it once; a killed build leaves no cache.
* Damage (a truncated or edited file) is detected, the cache rebuilt, never trained on: the
  file's length is checked whenever it is opened, and its content against the digests
  recorded at build time when ``verify`` (the driver's ``prepare``, once per study, which
  also warms the page cache for the trials).
* Where: ``$ORCHESTRATOR_CACHE/images`` (``~/.cache/orchestrator/images``);
  ``python -m orchestrator cache list`` and ``cache clear`` show and remove them.

numpy's ``open_memmap`` and the standard library's process pool do the work; nothing in
torch, torchvision or a data-loading library keeps a decoded, shared, content-keyed copy of
an image folder between processes, so the key, the build and the checks are written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from trainables.data.decoding import checked_decode, decode  # noqa: F401  (decode: re-exported)

#: Bump when the decoding or the layout changes: older caches are then not reused.
CACHE_VERSION = 2  # 2: image files checked (``decoding.file_problem``) before they are decoded; sha256
PREPROCESSING = "RGB, PIL bilinear resize to SxS, uint8 (N, 3, S, S)"
#: Images decoded per task of the process pool.
CHUNK = 512
#: Below this many images the pool's start (a few seconds per process) costs more than it saves.
POOL_FROM = 4000
IMAGES_FILE, INDEX_FILE = "images.npy", "index.json"


class CacheError(ValueError):
    """An image of a source cannot be decoded (the caller says what that means for it)."""


SPAWN_GUARD = (
    "the processes that decode images start afresh (spawn) and import the script that started "
    'them: put its code under if __name__ == "__main__":'
)


def _refuse_in_spawned_bootstrap() -> None:
    """Refuse in a worker process that is still importing the parent's script (a script
    without the ``__main__`` guard): waiting for the parent's lock there would hang both for
    ever. The test is multiprocessing's own (``spawn._check_not_importing_main``)."""
    from multiprocessing import process

    if getattr(process.current_process(), "_inheriting", False):
        raise CacheError(SPAWN_GUARD)


def cache_root() -> Path:
    from trainables.data.synthfaces import default_cache_dir

    return default_cache_dir() / "images"


def _digest(block: np.ndarray) -> str:
    # sha256: hardware-accelerated on current CPUs, twice blake2b's speed here (1.6 GB/s)
    return hashlib.sha256(np.ascontiguousarray(block).data).hexdigest()[:32]


def _decode_chunk(npy: str, start: int, items: Sequence[bytes | str], size: int) -> tuple[str, list]:
    """Decode ``items`` into rows ``start...`` of the ``.npy`` at ``npy`` (a process of the
    pool, or this one); returns the rows' digest and (row, reason) of what failed (its row
    stays zero)."""
    out = np.load(npy, mmap_mode="r+")
    failed = []
    for k, item in enumerate(items):
        # a file is checked as the training data's check of unreadable images checks it, with
        # the same reasons: this cache is that check (one pass over the files)
        image, why = checked_decode(item, size)
        if image is None:
            failed.append((start + k, why))
        else:
            out[start + k] = image
    # no flush (msync) here: the rows are in the page cache, which every process reads, and
    # the kernel writes them back; waiting for the disk per chunk made the build 1.2-1.5x
    # slower. A cache that did not reach the disk whole (a power loss) fails its digests
    # when the next study prepares, and is rebuilt.
    digest = _digest(out[start : start + len(items)])
    del out
    return digest, failed


@dataclass(frozen=True)
class CachedImages:
    """A decoded source: ``images`` (a copy-on-write memory map, uint8 (N, 3, S, S), row i
    the i-th item of the source), what failed to decode (row, reason), where it lives, its
    size in bytes and how long its build took (None: it was there already)."""

    directory: Path
    images: np.ndarray
    failed: tuple[tuple[int, str], ...]
    nbytes: int
    built_s: float | None

    def tensor(self):
        """The images as a torch tensor over the same memory (no copy)."""
        import torch

        return torch.from_numpy(self.images)


class Rows:
    """Rows ``index`` of a cached image array, as a training or validation set reads them: a
    view of the shared cache (selecting a subset gives another view), whose batches are
    gathered when read (``rows[i:j]``, ``rows[array]``: a uint8 tensor of those rows)."""

    def __init__(self, images, index) -> None:
        import torch

        self.base = images if isinstance(images, torch.Tensor) else torch.from_numpy(images)
        self.index = torch.as_tensor(np.asarray(index), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    def __getitem__(self, key):
        import torch

        # index_select: about 7x faster than advanced indexing for uint8 rows on a CPU
        return torch.index_select(self.base, 0, self.index[torch.as_tensor(key) if not isinstance(key, slice) else key])

    def subset(self, idx) -> "Rows":
        import torch

        return Rows(self.base, self.index[torch.as_tensor(np.asarray(idx), dtype=torch.long)])


def key_of(kind: str, described: Sequence[str], size: int) -> str:
    payload = json.dumps({"v": CACHE_VERSION, "pre": PREPROCESSING, "kind": kind, "size": size, "items": described})
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _described(paths: Sequence[str]) -> list[str]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}")
        except OSError:
            out.append(f"{os.path.abspath(p)}\0missing")
    return out


#: Caches this process has verified (file, length, modification time): a study's driver
#: prepares every variant, and each reads the same caches.
_VERIFIED: set[tuple[str, int, int]] = set()


def _open(directory: Path, n: int, size: int, *, verify: bool) -> CachedImages | None:
    """The cache in ``directory`` when whole (and, with ``verify``, its content as built);
    None when it is missing or damaged."""
    try:
        index = json.loads((directory / INDEX_FILE).read_text())
        path = directory / IMAGES_FILE
        images = np.load(path, mmap_mode="c")
    except (OSError, ValueError):
        return None
    if images.shape != (n, 3, size, size) or images.dtype != np.uint8 or index.get("rows") != n:
        return None
    st = path.stat()
    seen = (str(path), st.st_size, st.st_mtime_ns)
    if verify and seen not in _VERIFIED:  # once per process: the driver prepares each variant
        chunks = [_digest(images[i : i + CHUNK]) for i in range(0, n, CHUNK)]
        if chunks != index.get("digests"):
            return None
        _VERIFIED.add(seen)
    failed = tuple((int(r), str(w)) for r, w in index.get("failed", []))
    return CachedImages(directory, images, failed, int(path.stat().st_size), None)


def cached(
    kind: str,
    described: Sequence[str],
    items: Callable[[], Sequence[bytes | str]],
    size: int,
    *,
    verify: bool = False,
    workers: int | None = None,
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> CachedImages:
    """The cache of a source described by ``described`` (one line per item, its content as
    the file system tells it), built from ``items()`` (paths or encoded images) when missing
    or damaged."""
    from filelock import FileLock

    _refuse_in_spawned_bootstrap()
    root = Path(root or cache_root())
    root.mkdir(parents=True, exist_ok=True)
    key = key_of(kind, described, size)
    final, n = root / key, len(described)
    with FileLock(str(root / f"{key}.lock")):
        found = _open(final, n, size, verify=verify)
        if found is not None:
            return found
        started = time.perf_counter()
        tmp = root / f"{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        npy = str(tmp / IMAGES_FILE)
        np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(n, 3, size, size)).flush()
        todo = list(items())
        chunks = [(i, todo[i : i + CHUNK]) for i in range(0, n, CHUNK)]
        workers = workers or os.cpu_count() or 1
        try:
            if workers > 1 and n >= POOL_FROM:
                # spawn: a forked copy of a process holding torch's threads can hang
                with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                    done = list(pool.map(_decode_chunk, [npy] * len(chunks), *zip(*chunks), [size] * len(chunks)))
            else:
                done = [_decode_chunk(npy, start, part, size) for start, part in chunks]
        except BrokenProcessPool:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheError(
                f"a process decoding images into {final.name} stopped abruptly: it ran out of memory or "
                f"was killed, or {SPAWN_GUARD}"
            ) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-built folder left behind
            raise
        failed = [f for _, fs in done for f in fs]
        index = {
            "version": CACHE_VERSION,
            "kind": kind,
            "preprocessing": PREPROCESSING,
            "size": size,
            "rows": n,
            "source": described[0].split("\0")[0] if described else "",
            "digests": [d for d, _ in done],
            "failed": failed,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index))
        shutil.rmtree(final, ignore_errors=True)  # a damaged one
        os.replace(tmp, final)
        seconds = time.perf_counter() - started
        out = _open(final, n, size, verify=False)
        assert out is not None  # just written whole
        if log is not None:
            log(
                f"decoded {n} images of {kind} at {size} px into {final} ({out.nbytes / 2**20:.0f} MiB, {seconds:.1f} s)"
            )
        return CachedImages(out.directory, out.images, out.failed, out.nbytes, seconds)


def image_files(paths: Sequence[str], size: int, **kw) -> CachedImages:
    """The cache of image files (row i: ``paths[i]``); in a trial that reads a study's data
    snapshot (``trainables.data.snapshot``), the cache the study's preparation found for
    them, opened by its key without a ``stat`` of every file."""
    from trainables.data import snapshot

    pinned = snapshot.pinned_cache(paths, size)
    if pinned is not None:
        found = _open_pinned(pinned, len(paths), size)
        if found is not None:
            return found
    out = cached("files", _described(paths), lambda: list(paths), size, **kw)
    snapshot.record_cache(paths, size, out.directory.name)
    return out


def _open_pinned(directory: Path, n: int, size: int) -> CachedImages | None:
    """The cache in ``directory`` when it is whole (its length checked as always), else None."""
    from filelock import FileLock

    if not directory.is_dir():
        return None
    with FileLock(str(directory.parent / f"{directory.name}.lock")):  # not while a study rebuilds it
        return _open(directory, n, size, verify=False)


def bin_images(path: str | Path, size: int, blobs: Callable[[], Sequence[bytes]], n: int, **kw) -> CachedImages:
    """The cache of the ``n`` encoded images of an insightface ``.bin`` (row i: its i-th)."""
    (line,) = _described([str(path)])
    return cached("bin", [f"{line}\0{i}" for i in range(n)], blobs, size, **kw)


def bin_labels(
    path: str | Path, read: Callable[[], tuple[int, list[bool]]], root: Path | None = None
) -> tuple[int, list[bool]]:
    """(images, is-same flags) of an insightface ``.bin``, kept beside its decoded images
    (keyed by the file's path, size and modification time): a trial reads them, not the whole
    file of encoded images (70 MB for LFW's 12,000), which only a build needs."""
    (line,) = _described([str(path)])
    file = Path(root or cache_root()) / f"{key_of('bin-labels', [line], 0)}.labels.json"
    try:
        found = json.loads(file.read_text())
        return int(found["images"]), [bool(x) for x in found["issame"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    n, issame = read()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"images": n, "issame": issame}))
        os.replace(tmp, file)
    except OSError:
        pass  # a read-only cache: the file is read each time
    return n, issame


def list_caches(root: Path | None = None) -> list[dict]:
    """Every cache under ``root``: its folder, kind, first source, rows, size, bytes, build time."""
    out = []
    for d in sorted(Path(root or cache_root()).glob("*")):
        if not d.is_dir() or d.suffix == ".tmp":
            continue
        try:
            index = json.loads((d / INDEX_FILE).read_text())
            nbytes = (d / IMAGES_FILE).stat().st_size
        except (OSError, ValueError):
            index, nbytes = {}, 0
        out.append({"directory": str(d), "kind": index.get("kind", "?"), "source": index.get("source", "?"),
                    "rows": index.get("rows", 0), "size": index.get("size", 0), "bytes": nbytes,
                    "built_at": index.get("built_at", "?")})  # fmt: skip
    return out


def clear_caches(root: Path | None = None) -> int:
    """Remove every cache under ``root`` (each under its lock: one being built or read by a
    study that is starting is waited for); returns how many bytes were freed."""
    from filelock import FileLock

    root = Path(root or cache_root())
    freed = 0
    for entry in list_caches(root):
        d = Path(entry["directory"])
        with FileLock(str(root / f"{d.name}.lock")):
            freed += entry["bytes"]
            shutil.rmtree(d, ignore_errors=True)
    from trainables.data import snapshot

    for small in [*root.glob("*.labels.json"), *snapshot.files(root)]:
        freed += small.stat().st_size
        small.unlink(missing_ok=True)
    return freed
