"""The embedding cache: each (encoder, weights, preprocessing, images) encoded once.

An entry is a directory ``<cache>/embeddings/<key>/`` holding ``embeddings.npy`` (float32,
(N, D), opened memory-mapped, so that concurrent trials share the pages instead of each
holding a copy) and ``meta.json`` (what the key was made of, the shape, and the SHA-256 of
the array file). The key is a hash of what the embeddings depend on: the encoder's
identity (resolved files; see ``encoders.identity``), the preprocessing (flip, the
encoder's input size and normalisation follow from its hashed config files) and the image
list's fingerprint. Changed weights or images therefore give a new key, never a stale hit.

Building happens under a file lock (``filelock``, as the synthfaces cache does), so that
concurrent trials, or concurrent runs, never encode the same thing twice: the first builds,
the others wait and read. Every read checks the entry: meta that does not parse or names
another key, an array of the wrong shape or type, or a checksum that does not match is a
corrupt entry; it is reported in one line and rebuilt. The checksum is verified once per
process and file version (path, size, modification time), so a worker that runs many
trials pays for it once. Each build appends a line to ``<cache>/embeddings/builds.log``.

Written here because no library provides a shared, locked, checksummed array cache:
``joblib.Memory`` neither locks nor verifies, and a cache of a data loader's output (e.g.
``datasets``) would put a dependency and a format between the trials and a numpy array.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from filelock import FileLock

#: Bump when what an entry holds changes, so that older entries are not read.
CACHE_VERSION = 1
ARRAY, META, BUILDS_LOG = "embeddings.npy", "meta.json", "builds.log"

_verified: set[tuple[str, int, int]] = set()


class CorruptCache(Exception):
    """An entry that exists but cannot be trusted (the message says why)."""


@dataclass(frozen=True)
class Hit:
    """Embeddings from the cache and whether this call built them."""

    array: np.ndarray
    path: Path
    built: bool
    seconds: float


def cache_root(cache_dir: Path | None = None) -> Path:
    from trainables.data.synthfaces import default_cache_dir

    return Path(cache_dir or default_cache_dir()) / "embeddings"


def entry_key(parts: dict[str, Any]) -> str:
    payload = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def read_entry(directory: Path, parts: dict[str, Any], n: int) -> np.ndarray | None:
    """The entry's array (memory-mapped), None when there is none, ``CorruptCache`` when it is damaged."""
    meta_path, array_path = directory / META, directory / ARRAY
    if not meta_path.exists() and not array_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise CorruptCache(f"meta.json unreadable ({type(err).__name__})") from None
    if (
        not isinstance(meta, dict)
        or meta.get("version") != CACHE_VERSION
        or meta.get("parts") != json.loads(json.dumps(parts, sort_keys=True, default=str))
    ):
        raise CorruptCache("meta.json does not describe this entry (stale)")
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CorruptCache(f"embeddings.npy unreadable ({str(err).splitlines()[0][:120]})") from None
    if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != n or list(array.shape) != meta.get("shape"):
        raise CorruptCache(
            f"embeddings.npy holds {array.dtype} {list(array.shape)}, expected float32 "
            f"{meta.get('shape')} for {n} images"
        )
    st = array_path.stat()
    stamp = (str(array_path), st.st_size, st.st_mtime_ns)
    if stamp not in _verified:
        if _sha256(array_path) != meta.get("sha256"):
            raise CorruptCache("embeddings.npy does not match its checksum")
        _verified.add(stamp)
    return array


def embeddings(
    parts: dict[str, Any],
    n: int,
    build: Callable[[], np.ndarray],
    *,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> Hit:
    """The (n, D) embeddings ``parts`` describes: read from the cache, or built by ``build()``
    once (under the entry's lock) and stored."""
    root = cache_root(cache_dir)
    directory = root / entry_key(parts)
    t0 = time.perf_counter()
    try:
        found = read_entry(directory, parts, n)
        if found is not None:
            return Hit(found, directory, False, time.perf_counter() - t0)
    except CorruptCache:
        pass  # rebuilt below, under the lock (another process may be rebuilding it now)
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        try:
            found = read_entry(directory, parts, n)
            if found is not None:  # built by another process while this one waited
                return Hit(found, directory, False, time.perf_counter() - t0)
        except CorruptCache as err:
            log(f"embedding cache {directory}: {err}; rebuilding")
        array = np.ascontiguousarray(build(), dtype=np.float32)
        if array.ndim != 2 or len(array) != n:
            raise ValueError(f"the encoder gave embeddings of shape {array.shape} for {n} images")
        tmp = directory / f"{ARRAY}.{os.getpid()}.tmp"
        with tmp.open("wb") as f:
            np.save(f, array)
            f.flush()
            os.fsync(f.fileno())
        digest = _sha256(tmp)
        os.replace(tmp, directory / ARRAY)
        meta = {
            "version": CACHE_VERSION,
            "parts": parts,
            "shape": list(array.shape),
            "dtype": "float32",
            "sha256": digest,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_s": round(time.perf_counter() - t0, 3),
        }
        tmp = directory / f"{META}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp, directory / META)
        with (root / BUILDS_LOG).open("a") as f:
            f.write(
                json.dumps(
                    {
                        "key": directory.name,
                        "encoder": parts.get("encoder"),
                        "n": n,
                        "dim": array.shape[1],
                        "seconds": meta["build_s"],
                        "pid": os.getpid(),
                        "at": meta["built_at"],
                    }
                )
                + "\n"
            )
        st = (directory / ARRAY).stat()
        _verified.add((str(directory / ARRAY), st.st_size, st.st_mtime_ns))
        return Hit(np.load(directory / ARRAY, mmap_mode="r"), directory, True, time.perf_counter() - t0)


__all__ = ["CorruptCache", "Hit", "cache_root", "embeddings", "entry_key", "read_entry"]
