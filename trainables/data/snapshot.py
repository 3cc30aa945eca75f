"""A study's data as its preparation found it, pinned for every one of its trials.

The driver's ``prepare`` lists the training folder (hundreds of thousands of files at the
notes' scale), stats every file for the decoded-image cache's key and checks the cache's
content. A trial that did all of it again would spend longer before its first batch than a
plain ``ImageFolder`` does (0.4 s for 20,000 files, most of it Python per-file work), and a
file edited mid-study would give later trials other data than earlier ones.

So what ``prepare`` found is recorded (``recording``): each listing of a training folder or
manifest, and which cache holds the images of each list of paths. It is saved in the cache
(``save``) as a file named by the sha256 of its content, the *snapshot*; its name goes into
``results.csv`` (``data_snapshot``) and into each trial's config (the registry takes it out
before the config is validated), and the trial reads its data through it (``pinned``): the
listing from the snapshot, the cache opened by its key, with no per-file ``stat``. Every
trial of a study, resumed ones included, reads the same data.

* Content-addressed: a snapshot or listing whose bytes no longer hash to its name is
  damaged, and a trial then lists and stats its data itself, as without a snapshot (it says
  so). The same goes for one that is gone (``cache clear`` removes them with the caches).
* Pinned images were checked by the driver (sizes, modification times, and the cache's
  content against its digests) when the study prepared; an image edited afterwards is not
  read by this study's trials (they read the pixels every other trial read) and makes a new
  cache for the next study that prepares.

The standard library's ``contextvars`` carries the pins from the trial's entry point to the
readers (``sources.read_train_data``, ``image_cache.image_files``), so that the Ray-free
training loops keep their signatures; nothing in Ray Tune or torch pins a data listing for
the trials of an experiment, so this is written here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

SNAPSHOT_SUFFIX, LISTING_SUFFIX = ".snapshot.json", ".listing.npz"


@dataclass
class Pins:
    """What a preparation found: ``listings`` (a source's key -> its listing's file name)
    and ``caches`` (a list of paths' key, which holds the paths and the size -> the name of
    the cache's directory)."""

    listings: dict[str, str] = field(default_factory=dict)
    caches: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # where the pinned files live (the image cache's folder)


_RECORDING: ContextVar[Pins | None] = ContextVar("orchestrator_data_recording", default=None)
_PINNED: ContextVar[Pins | None] = ContextVar("orchestrator_data_pinned", default=None)


def _root(root: Path | None = None) -> Path:
    from trainables.data.image_cache import cache_root

    return Path(root or cache_root())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a reader sees the whole file or none


def source_key(kind: str, reference: str | Path) -> str:
    return f"{kind}:{os.path.abspath(os.path.expanduser(str(reference)))}"


def paths_key(paths: Sequence[str], size: int) -> str:
    """The key of a list of image paths at an input size: the paths in order (relative
    ones with the working directory, as they resolve)."""
    joined = "\0".join(paths)
    h = hashlib.sha256(f"{size}\0".encode())
    if ("\0" + joined).count("\0/") != len(paths):  # a relative one (counted in C: 20,000 paths in 1 ms)
        h.update(f"{os.getcwd()}\0".encode())
    h.update(joined.encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


# ------------------------------------------------------------------ the driver records
@contextmanager
def recording(root: Path | None = None) -> Iterator[Pins]:
    """Record what the readers find inside (``prepare``); ``save`` it afterwards."""
    pins = Pins(root=_root(root))
    token = _RECORDING.set(pins)
    try:
        yield pins
    finally:
        _RECORDING.reset(token)


def record_listing(key: str, arrays: dict[str, np.ndarray], texts: dict[str, Sequence[str]]) -> None:
    """Keep a listing (numeric ``arrays`` and lists of strings ``texts``) under ``key``."""
    pins = _RECORDING.get()
    if pins is None or any("\n" in t for v in texts.values() for t in v):
        return  # (a name with a line break in it is not pinned: the trial lists it itself)
    buf = io.BytesIO()
    blobs = {f"text_{k}": np.frombuffer("\n".join(v).encode("utf-8", "surrogateescape"), dtype=np.uint8)
             for k, v in texts.items()}  # fmt: skip
    counts = {f"count_{k}": np.asarray(len(v), dtype=np.int64) for k, v in texts.items()}
    np.savez(buf, **{f"array_{k}": np.asarray(v) for k, v in arrays.items()}, **blobs, **counts)
    data = buf.getvalue()
    name = _sha(data)
    assert pins.root is not None
    path = pins.root / f"{name}{LISTING_SUFFIX}"
    if not path.is_file():
        _write(path, data)
    pins.listings[key] = name


def record_cache(paths: Sequence[str], size: int, directory: str) -> None:
    """Keep which cache (its directory's name) holds the images of ``paths`` at ``size``."""
    pins = _RECORDING.get()
    if pins is not None:
        pins.caches[paths_key(paths, size)] = directory


def save(pins: Pins) -> str | None:
    """Write the snapshot of what was recorded; returns the snapshot file's absolute path,
    which is what trials are handed (None when nothing was recorded). The path, not the
    bare name: a trial reads the cache folder its study's driver prepared in, whatever its
    own process's ``ORCHESTRATOR_CACHE`` says (a Ray started earlier with another one; on a
    cluster the driver has checked that every node sees that folder at that path)."""
    if not pins.listings and not pins.caches:
        return None
    data = json.dumps({"listings": pins.listings, "caches": pins.caches}, sort_keys=True).encode()
    name = _sha(data)
    assert pins.root is not None
    path = pins.root / f"{name}{SNAPSHOT_SUFFIX}"
    if not path.is_file():
        _write(path, data)
    return str(path.resolve())


# ------------------------------------------------------------------ a trial reads through it
@contextmanager
def pinned(snapshot: str | None, log=print) -> Iterator[Pins | None]:
    """Inside, the readers take what the snapshot file ``snapshot`` (``save``'s path) pins
    (None: nothing is pinned). A snapshot that is gone or damaged pins nothing, and ``log``
    says so."""
    pins = None
    if snapshot:
        where, name = Path(snapshot).parent, Path(snapshot).name.removesuffix(SNAPSHOT_SUFFIX)
        pins = _read_snapshot(Path(snapshot), name)
        if pins is None:
            log(
                f"data snapshot {name} is missing or damaged in {where} (caches cleared?): "
                "this trial lists and checks its data itself"
            )
        else:
            pins.root = where
            log(f"reading the data its study prepared (data snapshot {name})")
    token = _PINNED.set(pins)
    try:
        yield pins
    finally:
        _PINNED.reset(token)


def _read_snapshot(path: Path, name: str) -> Pins | None:
    try:
        data = path.read_bytes()
        if _sha(data) != name:
            return None
        found = json.loads(data)
        return Pins(dict(found["listings"]), {str(k): str(v) for k, v in found["caches"].items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pinned_listing(key: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]]] | None:
    """The listing pinned under ``key`` (arrays, texts), or None (nothing pinned, or its file
    is gone or damaged: the caller lists the source itself)."""
    pins = _PINNED.get()
    name = pins.listings.get(key) if pins is not None else None
    if name is None:
        return None
    assert pins is not None and pins.root is not None
    try:
        data = (pins.root / f"{name}{LISTING_SUFFIX}").read_bytes()
        if _sha(data) != name:
            return None
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k[len("array_") :]: z[k] for k in z.files if k.startswith("array_")}
            texts = {}
            for k in z.files:
                if k.startswith("text_"):
                    n = int(z[f"count_{k[len('text_') :]}"])
                    text = z[k].tobytes().decode("utf-8", "surrogateescape")
                    texts[k[len("text_") :]] = text.split("\n") if n else []
        return arrays, texts
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def pinned_cache(paths: Sequence[str], size: int) -> Path | None:
    """The directory of the cache pinned for ``paths`` at ``size`` (one row per path), or None."""
    pins = _PINNED.get()
    if pins is None or not pins.caches:
        return None
    found = pins.caches.get(paths_key(paths, size))
    if found is None:
        return None
    assert pins.root is not None
    return pins.root / found


def active() -> bool:
    """Whether a trial reads through a snapshot here."""
    return _PINNED.get() is not None


def files(root: Path | None = None) -> list[Path]:
    """Every snapshot and listing file under ``root`` (what ``cache clear`` removes)."""
    where = _root(root)
    return sorted([*where.glob(f"*{SNAPSHOT_SUFFIX}"), *where.glob(f"*{LISTING_SUFFIX}")])
