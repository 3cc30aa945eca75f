"""The shared decoded-image cache: the same pixels as decoding each file, built once for
every process, keyed by content, rebuilt when damaged, read without a copy."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orchestrator.cli import main
from trainables.data import image_cache
from trainables.data.sources import read_image


def _files(d: Path, n: int, size: int = 40) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = d / f"{i:03d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(path, quality=90)
        out.append(str(path))
    return out


def test_rows_are_the_files_decoded_as_every_loader_decodes_them(tmp_path):
    paths = _files(tmp_path / "img", 6)
    c = image_cache.image_files(paths, 32, root=tmp_path / "cache")
    assert c.images.shape == (6, 3, 32, 32) and c.failed == () and c.built_s is not None
    for i, p in enumerate(paths):
        np.testing.assert_array_equal(c.images[i], read_image(p, 32).numpy())


def test_built_once_then_read_and_a_changed_file_makes_a_new_cache(tmp_path):
    paths = _files(tmp_path / "img", 4)
    first = image_cache.image_files(paths, 24, root=tmp_path / "cache")
    again = image_cache.image_files(paths, 24, root=tmp_path / "cache")
    assert again.built_s is None and again.directory == first.directory
    Image.new("RGB", (40, 48), (255, 0, 0)).save(paths[2])  # edited: a new content key
    os.utime(paths[2], ns=(1, 1))
    changed = image_cache.image_files(paths, 24, root=tmp_path / "cache")
    assert changed.directory != first.directory and changed.built_s is not None
    assert changed.images[2][0].min() > 200  # the new, red image
    other_size = image_cache.image_files(paths, 16, root=tmp_path / "cache")
    assert other_size.directory not in (first.directory, changed.directory)


@pytest.mark.parametrize("damage", ["truncate", "edit"])
def test_a_damaged_cache_is_rebuilt_never_read(tmp_path, damage):
    """Truncated: refused whenever it is opened; edited in place (same length): refused when
    verified (the driver verifies once per study, before any trial)."""
    paths = _files(tmp_path / "img", 5)
    c = image_cache.image_files(paths, 24, root=tmp_path / "cache")
    good = np.array(c.images)
    npy = c.directory / image_cache.IMAGES_FILE
    data = bytearray(npy.read_bytes())
    del c
    if damage == "truncate":
        npy.write_bytes(bytes(data[: len(data) - 100]))
    else:
        data[-50:] = bytes(50)  # zeros where pixels were
        npy.write_bytes(bytes(data))
    again = image_cache.image_files(paths, 24, root=tmp_path / "cache", verify=True)
    assert again.built_s is not None  # rebuilt
    np.testing.assert_array_equal(again.images, good)


def test_undecodable_files_are_reported_by_row(tmp_path):
    paths = _files(tmp_path / "img", 3)
    Path(paths[1]).write_bytes(b"not an image")
    c = image_cache.image_files(paths, 24, root=tmp_path / "cache")
    assert [r for r, _ in c.failed] == [1] and "UnidentifiedImageError" in c.failed[0][1]


def test_the_process_pool_gives_the_same_cache(tmp_path, monkeypatch):
    paths = _files(tmp_path / "img", 12)
    alone = image_cache.image_files(paths, 24, root=tmp_path / "one", workers=1)
    monkeypatch.setattr(image_cache, "POOL_FROM", 1)
    monkeypatch.setattr(image_cache, "CHUNK", 5)
    pooled = image_cache.image_files(paths, 24, root=tmp_path / "pool", workers=2)
    np.testing.assert_array_equal(pooled.images, alone.images)


#: A script that builds a cache with worker processes, with or without the ``__main__`` guard.
SCRIPT = """
from trainables.data import image_cache
image_cache.POOL_FROM, image_cache.CHUNK = 1, 3  # workers for a handful of files
{body}
"""
BUILD = "print(image_cache.image_files({paths!r}, 16, root={root!r}, workers=2).images.shape)"


@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_the_main_guard_ends_in_one_message_not_a_hang(tmp_path, guarded):
    import subprocess
    import sys

    paths, root = _files(tmp_path / "img", 6), str(tmp_path / "cache")
    build = BUILD.format(paths=paths, root=root)
    body = f'if __name__ == "__main__":\n    {build}' if guarded else build
    (tmp_path / "script.py").write_text(SCRIPT.format(body=body))
    # the spawned workers import the script; unguarded, each would wait for the lock its parent holds
    done = subprocess.run([sys.executable, str(tmp_path / "script.py")], capture_output=True, text=True, timeout=120)
    if guarded:
        assert done.returncode == 0 and done.stdout.split() == ["(6,", "3,", "16,", "16)"], done.stderr
    else:
        assert done.returncode != 0
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("trainables.data.image_cache.CacheError") and 'if __name__ == "__main__":' in last
        assert not list(Path(root).glob("*.tmp"))  # no half-built cache left behind
    assert [c["rows"] for c in image_cache.list_caches(Path(root))] == ([6] if guarded else [])


def _build(args) -> tuple[str, bool]:
    paths, root = args
    c = image_cache.image_files(paths, 24, root=Path(root))
    return str(c.directory), c.built_s is not None


def test_two_processes_starting_together_build_it_once(tmp_path):
    paths = _files(tmp_path / "img", 40)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_build, [(paths, str(tmp_path / "cache"))] * 2)
    assert results[0][0] == results[1][0] and sorted(b for _, b in results) == [False, True]


def _mapped_file(address: int) -> str | None:
    """The file mapped at ``address`` in this process (``/proc/self/maps``), or None (anonymous
    memory: the process's own)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        if lo <= address < hi:
            return parts[5] if len(parts) > 5 else None
    return None


def test_a_benchmark_is_read_from_the_cache_without_a_copy(tmp_path, monkeypatch):
    """``load_benchmark``'s images live in a mapping of the cache's file (the page cache,
    shared by every trial), not in the trial's own memory; loading it twice decodes nothing."""
    import pickle

    from trainables.evaluation.benchmarks import load_benchmark

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "c"))
    blobs = [Path(p).read_bytes() for p in _files(tmp_path / "img", 8)]
    (tmp_path / "b.bin").write_bytes(pickle.dumps((blobs, [True, False, True, False]), protocol=4))
    b = load_benchmark("b", tmp_path / "b.bin", size=24)
    (cache,) = [Path(e["directory"]) for e in image_cache.list_caches()]
    assert _mapped_file(b.images.data_ptr()) == str(cache / image_cache.IMAGES_FILE)
    np.testing.assert_array_equal(b.images.numpy(), np.load(cache / image_cache.IMAGES_FILE))
    np.testing.assert_array_equal(b.images[3].numpy(), image_cache.decode(blobs[3], 24))
    builds = []
    monkeypatch.setattr(image_cache, "_decode_chunk", lambda *a: builds.append(a))
    load_benchmark("b", tmp_path / "b.bin", size=24)
    assert builds == []


def test_cache_list_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "c"))
    image_cache.image_files(_files(tmp_path / "img", 3), 24)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"1 caches in {tmp_path / 'c' / 'images'}") and "3 images at 24 px" in out[0]
    assert main(["cache", "clear"]) == 0
    assert image_cache.list_caches() == []


def test_a_trial_holds_no_decoded_image_set_of_its_own(tmp_path, monkeypatch):
    """``load_data`` on an image folder: the training images, the validation identities and
    the benchmark all come from mappings of cache files (a batch is copied when it is used,
    the set never); the driver's pass builds them, a trial's pass decodes nothing. The
    training folder is one cache, whatever the split: training and validation are views of
    its rows, and so are those of another ``val_fraction``."""
    from trainables.da_lora.config import DaLoraConfig
    from trainables.da_lora.loop import load_data
    from trainables.data.real_shaped import RealShapedSpec, generate

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "c"))
    generate(tmp_path / "d", RealShapedSpec(identities=12, images=4, pairs=40, pair_list=False), log=lambda _: None)
    cfg = DaLoraConfig(train_data=str(tmp_path / "d" / "train"), benchmarks={"lfw": str(tmp_path / "d" / "lfw.bin")},
                       val_fraction=0.34)  # fmt: skip
    lines: list[str] = []
    load_data(cfg, 28, verify=True, log=lines.append)
    assert len(lines) == 2 and all(line.startswith("decoded ") for line in lines)  # the training folder, lfw
    assert not (tmp_path / "c" / "image-checks").exists()  # the cache is the check of unreadable images
    monkeypatch.setattr(image_cache, "_decode_chunk", lambda *a: pytest.fail("a trial decoded images"))
    data = load_data(cfg, 28)
    caches = {str(Path(e["directory"]) / image_cache.IMAGES_FILE) for e in image_cache.list_caches()}
    assert _mapped_file(data.train.images.base.data_ptr()) in caches
    assert data.val.images.base.data_ptr() == data.train.images.base.data_ptr()  # one mapping, two views
    assert _mapped_file(data.benchmarks[0].images.data_ptr()) in caches
    assert len(data.train) + len(data.val.images) == 12 * 4 and len(data.val.identities) >= 4
    # the rows are the files' own: each training row is its file decoded
    for k in (0, len(data.train) - 1):
        expected = image_cache.decode(data.train.paths[k], 28)
        assert np.array_equal(data.train.images[np.array([k])][0].numpy(), expected)
    other = load_data(cfg.model_copy(update={"val_fraction": 0.5}), 28)  # another split, the same cache
    assert other.train.images.base.data_ptr() != 0 and len(image_cache.list_caches()) == 2


def test_a_cache_is_verified_once_per_process(tmp_path, monkeypatch):
    """The driver prepares every variant and each opens the same caches with verify: the
    digests are read once per process, not once per variant."""
    paths = _files(tmp_path / "img", 4)
    image_cache.image_files(paths, 24, root=tmp_path / "cache")
    calls = []
    real = image_cache._digest
    monkeypatch.setattr(image_cache, "_digest", lambda block: calls.append(1) or real(block))
    for _ in range(3):
        image_cache.image_files(paths, 24, root=tmp_path / "cache", verify=True)
    assert len(calls) == 1  # 4 images: one chunk, digested once


def test_a_trial_reads_a_bins_flags_not_its_images(tmp_path, monkeypatch):
    """Once the driver has built a ``.bin``'s cache, a trial takes its is-same flags from beside
    the cache and never reads the file's encoded images; an edited file is read again."""
    from trainables.data.real_shaped import RealShapedSpec, generate
    from trainables.evaluation import benchmarks

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "c"))
    generate(tmp_path / "d", RealShapedSpec(identities=4, images=2, pairs=40, pair_list=False), log=lambda _: None)
    path = tmp_path / "d" / "lfw.bin"
    _, issame = benchmarks.read_bin(path)
    built = benchmarks.load_benchmark("lfw", path, size=24, verify=True)
    real = benchmarks.read_bin
    monkeypatch.setattr(benchmarks, "read_bin", lambda p: pytest.fail("a trial read the .bin"))
    again = benchmarks.load_benchmark("lfw", path, size=24)
    assert again.label.tolist() == [int(s) for s in issame] == built.label.tolist()
    monkeypatch.setattr(benchmarks, "read_bin", lambda p: (calls.append(p), real(p))[1])
    calls: list = []
    os.utime(path, ns=(1, 1))  # the file changed (as far as the file system tells)
    benchmarks.load_benchmark("lfw", path, size=24)
    assert calls  # read again: its flags and its images
