"""Real data (image folders, manifests, pair lists, ``.bin`` benchmarks) on files the tests
write themselves: readers, refusals, skipped images and a trial on them."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.da_lora.config import DaLoraConfig, metric_keys
from trainables.da_lora.loop import check_identity_overlap, load_data, run
from trainables.data.sources import DataError, limit_per_identity, read_image_folder, read_manifest
from trainables.evaluation.benchmarks import BenchmarkError, load_benchmark, read_bin, read_pairs_txt
from trainables.training import embed_all


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _write_faces(faces, root: Path, group: str, identities: int, *, nested: bool, prefix: str) -> dict[str, list[Path]]:
    """Write synthfaces images of a group as an image folder; returns name -> files."""
    g = faces.group(group)
    out: dict[str, list[Path]] = {}
    for ident in np.unique(g.identity)[:identities]:
        name = f"{prefix}{ident}"
        for j in np.flatnonzero(g.identity == ident):
            dom = faces.domains[g.domain[j]]
            d = root / dom / name if nested else root / name
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{name}_{len(out.get(name, [])) + 1:04d}.png"
            Image.fromarray(g.images[j].transpose(1, 2, 0)).save(path)
            out.setdefault(name, []).append(path)
    return out


def test_image_folders_and_manifest(faces, tmp_path):
    flat = _write_faces(faces, tmp_path / "flat", "train", 3, nested=False, prefix="id")
    data = read_image_folder(tmp_path / "flat")
    assert data.domains == ("default",) and len(data) == sum(len(v) for v in flat.values())
    assert data.names() == set(flat)
    _write_faces(faces, tmp_path / "nested", "train", 3, nested=True, prefix="id")
    nested = read_image_folder(tmp_path / "nested")
    assert nested.domains[0] == "visible" and set(nested.domains) == set(faces.domains)
    lines = ["path,identity,domain"] + [
        f"{p.relative_to(tmp_path)},{p.parent.name},{p.parent.parent.name}"
        for p in sorted((tmp_path / "nested").rglob("*.png"))
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    manifest = read_manifest(tmp_path / "m.csv")
    assert manifest.domains == nested.domains and np.array_equal(
        np.bincount(manifest.identity), np.bincount(nested.identity)
    )
    (tmp_path / "bad.csv").write_text("file,person\nx.png,a\n")
    with pytest.raises(DataError, match="needs the columns path and identity"):
        read_manifest(tmp_path / "bad.csv")


def test_samples_per_identity_limits_and_spreads_over_domains(faces, tmp_path):
    _write_faces(faces, tmp_path, "train", 4, nested=True, prefix="id")
    data = read_image_folder(tmp_path)  # 4 identities x 5 domains x 4 images
    few = limit_per_identity(data, 5, seed=0)
    assert set(np.bincount(few.identity)) == {5}
    for ident in range(4):
        assert len(set(few.domain[few.identity == ident])) == 5  # one shot per domain before a second
    assert few.paths == limit_per_identity(data, 5, seed=0).paths  # the data seed decides, nothing else
    assert few.paths != limit_per_identity(data, 5, seed=1).paths
    with pytest.raises(DataError, match="samples_per_identity=50, but no training identity has more than 20"):
        limit_per_identity(data, 50, seed=0)


def _lfw_benchmark(faces, root: Path, group: str = "eval", prefix: str = "ev") -> Path:
    files = _write_faces(faces, root, group, 6, nested=False, prefix=prefix)
    names = sorted(files)
    same = [f"{n} 1 {k}" for n in names for k in (2, 3)]
    diff = [f"{a} 1 {b} 2" for a, b in zip(names, names[1:] + names[:1])] * 2
    (root / "pairs.txt").write_text("2 6\n" + "\n".join(same[:6] + diff[:6] + same[6:] + diff[6:]) + "\n")
    return root / "pairs.txt"


def _bin(faces, path: Path, pairs: int = 10, protocol: int = 4) -> Path:
    ev = faces.group("eval")
    blobs = [_png(ev.images[i].transpose(1, 2, 0)) for i in range(2 * pairs)]
    issame = [bool(ev.identity[2 * k] == ev.identity[2 * k + 1]) for k in range(pairs)]
    path.write_bytes(pickle.dumps((blobs, issame), protocol=protocol))
    return path


def test_pairs_txt_reader(faces, tmp_path):
    path = _lfw_benchmark(faces, tmp_path)
    left, right, label, names = read_pairs_txt(path)
    assert len(left) == 24 and label.tolist() == ([1] * 6 + [0] * 6) * 2
    assert left[0].name.endswith("_0001.png") and right[0].name.endswith("_0002.png")
    assert len(names) == 6
    bench = load_benchmark("lfw", path, size=16)
    assert bench.images.shape[1:] == (3, 16, 16) and len(bench) == 24
    (tmp_path / "notpairs.txt").write_text("hello world this is\nnot a pair list at all\n")
    with pytest.raises(BenchmarkError, match="not a pair list"):
        read_pairs_txt(tmp_path / "notpairs.txt")


def test_bin_reader_and_malicious_bin(faces, tmp_path):
    images, issame = read_bin(_bin(faces, tmp_path / "ok.bin"))
    assert len(images) == 20 and len(issame) == 10 and all(isinstance(b, bytes) for b in images)
    bench = load_benchmark("ok", tmp_path / "ok.bin", size=32)
    assert np.array_equal(bench.left, np.arange(0, 20, 2)) and bench.images.dtype == torch.uint8

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([b"x", Exploit()], [True])))
    with pytest.raises(BenchmarkError, match="only bytes, lists and booleans"):
        read_bin(tmp_path / "evil.bin")
    assert not marker.exists()  # nothing ran
    (tmp_path / "dict.bin").write_bytes(pickle.dumps(({"a": 1}, [True]), protocol=4))
    with pytest.raises(BenchmarkError, match="holds a dict"):
        read_bin(tmp_path / "dict.bin")
    (tmp_path / "numpy.bin").write_bytes(pickle.dumps(([b"x", b"y"], np.array([True])), protocol=4))
    with pytest.raises(BenchmarkError, match="numpy"):
        read_bin(tmp_path / "numpy.bin")


def test_identity_overlap_refused(faces, tmp_path):
    _write_faces(faces, tmp_path / "train", "train", 4, nested=False, prefix="p")
    train = read_image_folder(tmp_path / "train")
    leaky = load_benchmark("lfw", _lfw_benchmark(faces, tmp_path / "bench", group="train", prefix="p"), size=16)
    with pytest.raises(DataError, match="benchmark lfw: 4 of its identities are also training identities"):
        check_identity_overlap(train, [leaky])
    clean = load_benchmark("lfw", _lfw_benchmark(faces, tmp_path / "clean"), size=16)
    check_identity_overlap(train, [clean])


def test_flip_test_embedding():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    x = torch.randn(4, 3, 8, 8)
    expected = torch.nn.functional.normalize(net(x) + net(x.flip(-1)), dim=1)
    torch.testing.assert_close(embed_all(net, x, flip=True), expected)
    assert not torch.allclose(embed_all(net, x, flip=False), expected)


def test_trial_on_image_folder_with_two_benchmarks(faces, standin, tmp_path):
    """The real-data path end to end: folder training set, pairs.txt and .bin benchmarks."""
    _write_faces(faces, tmp_path / "train", "train", 12, nested=True, prefix="t")
    cfg = DaLoraConfig(
        train_data=str(tmp_path / "train"),
        epochs=1,
        batch_size=16,
        domain_lora=True,
        lambda_domain=0.1,
        lambda_contrastive=0.1,
        samples_per_identity=10,
        val_fraction=0.34,
        benchmarks={
            "lfw": str(_lfw_benchmark(faces, tmp_path / "lfw")),
            "cfp": str(_bin(faces, tmp_path / "cfp.bin", pairs=20)),
        },
    )
    data = load_data(cfg, 32)
    # 4 of the 12 identities validate (val/heldout/...), never trained on; 8 train
    assert len(data.val.identities) == 4 and not set(data.val.identities) & set(data.train.identity)
    assert len(np.unique(data.train.identity)) == 8
    assert data.num_domains == 5 and set(np.bincount(data.train.identity)[np.unique(data.train.identity)]) == {10}
    reports = []
    run(cfg, lambda metrics, ckpt: reports.append(metrics))
    m = reports[-1]
    for name in ("lfw", "cfp"):
        assert 0.0 <= m[f"eval/{name}/acc"] <= 1.0 and 0.0 <= m[f"eval/{name}/auc"] <= 1.0
    assert m["eval/mean/acc"] == pytest.approx((m["eval/lfw/acc"] + m["eval/cfp/acc"]) / 2)
    assert not any(k.startswith("eval/cross_domain") for k in m)  # no synthfaces evaluation here
    assert 0.0 <= m["val/heldout/acc"] <= 1.0 and set(m) == set(metric_keys(cfg))
    with pytest.raises(DataError, match="val_fraction=0.2 holds out 2 of the 12 training identities"):
        load_data(cfg.model_copy(update={"val_fraction": 0.2}), 32)
    with pytest.raises(DataError, match="num_domains=6, but the training data has 5 domains"):
        load_data(cfg.model_copy(update={"num_domains": 6}), 32)
    with pytest.raises(DataError, match="name at least one benchmark"):
        load_data(cfg.model_copy(update={"benchmarks": {}}), 32)


def test_unreadable_training_images_are_skipped_and_counted(faces, standin, tmp_path, monkeypatch):
    """Empty, undecodable and truncated images are left out of the training set, listed
    with the reason, and counted in the provenance that every row of results.csv carries;
    an identity left with one image is counted too. The check is cached per set of files."""
    from trainables.da_lora.loop import SKIPPED_FILE, prepare
    from trainables.data import sources

    files = _write_faces(faces, tmp_path / "train", "train", 3, nested=False, prefix="id")
    good = sum(len(v) for v in files.values())
    broken = tmp_path / "train" / "id_broken"
    broken.mkdir()
    (broken / "empty.png").write_bytes(b"")
    (broken / "noise.png").write_bytes(os.urandom(300))
    whole = files[sorted(files)[0]][0].read_bytes()
    (broken / "truncated.png").write_bytes(whole[: len(whole) // 2])
    lonely = tmp_path / "train" / "id_lonely"
    lonely.mkdir()
    lonely.joinpath("only.png").write_bytes(whole)

    data = read_image_folder(tmp_path / "train")
    assert len(data) == good + 1  # id_broken has no readable image left and is gone
    reasons = dict(data.skipped)
    assert set(reasons) == {str(broken / n) for n in ("empty.png", "noise.png", "truncated.png")}
    assert reasons[str(broken / "empty.png")] == "empty file"
    assert "id_broken" not in data.names() and "id_lonely" in data.names()
    assert not set(data.paths) & set(reasons)

    calls = []
    monkeypatch.setattr(sources, "_image_problem", lambda p: calls.append(p))
    assert read_image_folder(tmp_path / "train").skipped == data.skipped and not calls  # from the cache
    (broken / "noise.png").write_bytes(whole)  # repaired: the files changed, so they are checked again
    monkeypatch.undo()
    again = read_image_folder(tmp_path / "train")
    assert len(again) == good + 2 and len(again.skipped) == 2

    cfg = DaLoraConfig(
        train_data=str(tmp_path / "train"),
        epochs=1,
        val_fraction=0,  # 5 people: too few to hold out
        benchmarks={"lfw": str(_lfw_benchmark(faces, tmp_path / "lfw"))},
    )
    prov = prepare(cfg, tmp_path)
    assert prov["skipped_images"] == "2" and prov["single_image_identities"] == "2"  # id_lonely, id_broken
    listed = (tmp_path / SKIPPED_FILE).read_text().splitlines()
    assert listed[0] == "path,reason" and len(listed) == 3

    for p in list(broken.iterdir()) + list(tmp_path.joinpath("train").rglob("*.png")):
        p.write_bytes(b"")
    with pytest.raises(DataError, match="none of its images can be read"):
        read_image_folder(tmp_path / "train")


def _path_pairs(files: dict[str, list[Path]], path: Path) -> Path:
    """A ``path1 path2 label`` pair list over image files (identity: the folder of an image)."""
    names = sorted(files)
    lines = [f"{files[n][0]} {files[n][1]} 1" for n in names] + [
        f"{files[a][0]} {files[b][0]} 0" for a, b in zip(names, names[1:] + names[:1])
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("leak", ["lfw_form", "path_form", "val_data", "val_vs_test"])
def test_benchmark_identities_that_were_trained_on_are_refused_through_the_cli(
    faces, standin, tmp_path, capsys, monkeypatch, leak
):
    """Through the path a user runs (`run`, the trainable's preparation): a test or
    validation benchmark naming training identities, in either pair-list form, or a
    validation benchmark sharing people with a test benchmark, ends in one line, exit 2."""
    from orchestrator.cli import main

    monkeypatch.chdir(tmp_path)
    _write_faces(faces, tmp_path / "train", "train", 6, nested=False, prefix="p")
    clean = _lfw_benchmark(faces, tmp_path / "clean")
    leaky_lfw = _lfw_benchmark(faces, tmp_path / "leaky", group="train", prefix="p")
    leaky_paths = _path_pairs(
        _write_faces(faces, tmp_path / "copies", "train", 6, nested=False, prefix="p"), tmp_path / "leaky-paths.txt"
    )
    sets = {
        "lfw_form": [f"benchmarks={{lfw: {leaky_lfw}}}"],
        "path_form": [f"benchmarks={{lfw: {leaky_paths}}}"],
        "val_data": [f"benchmarks={{lfw: {clean}}}", f"val_data={{dev: {leaky_lfw}}}"],
        "val_vs_test": [f"benchmarks={{lfw: {clean}}}", f"val_data={{dev: {clean}}}"],
    }[leak]
    expected = {
        "lfw_form": "benchmark lfw: 6 of its identities are also training identities",
        "path_form": "benchmark lfw: 6 of its identities are also training identities",
        "val_data": "validation benchmark dev: 6 of its identities are also training identities",
        "val_vs_test": "is the test benchmark lfw's file",
    }[leak]
    (tmp_path / "s.yaml").write_text(
        "name: s\nkind: ablation\ntrainable: da_lora\nmetric: train/loss\nmode: min\nseeds: [0]\nreference: a\n"
        f"base: {{epochs: 1, train_data: {tmp_path / 'train'}, val_fraction: 0}}\nvariants: {{a: {{}}}}\n"
    )
    argv = ["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_broken_links_and_link_loops_are_skipped_and_listed(faces, tmp_path):
    """An image that is a link loop or a dangling link is skipped and listed with the reason,
    like any unreadable image, not dropped unseen."""
    files = _write_faces(faces, tmp_path / "train", "train", 3, nested=False, prefix="id")
    d = sorted(files)[0]
    loop_a, loop_b = tmp_path / "train" / d / "loop_a.png", tmp_path / "train" / d / "loop_b.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "train" / d / "gone.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    data = read_image_folder(tmp_path / "train")
    reasons = dict(data.skipped)
    assert set(reasons) == {str(loop_a), str(loop_b), str(dangling)}
    assert all("a broken link or a link loop" in r for r in reasons.values())
    assert len(data) == sum(len(v) for v in files.values())


def test_a_pair_list_label_other_than_0_or_1_is_named_as_such(faces, tmp_path):
    files = _write_faces(faces, tmp_path / "imgs", "eval", 2, nested=False, prefix="e")
    a, b = (files[n][0] for n in sorted(files))
    (tmp_path / "pairs.txt").write_text(f"{a} {b} 2\n")
    with pytest.raises(
        BenchmarkError,
        match=r"pair 1: a 'path1 path2 label' line needs label 0 \(different\) or 1 "
        r"\(same\), got '2'",
    ):
        read_pairs_txt(tmp_path / "pairs.txt")


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG of a few hundred bytes whose header declares ``width x height`` RGB pixels (a
    decompression bomb: the rows that follow would inflate to width x height x 3 bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"\0" * (1 + 3 * width) * 8, 9)  # 8 rows of the 20000 declared
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_skipped_in_training_data_and_refuses_a_benchmark(faces, tmp_path):
    """Declared 20000 x 20000 (400 M pixels, over PIL's limit): in training data it is skipped
    and listed like any unreadable image, before a pixel is decoded; in a benchmark (a pair
    list or an insightface .bin) it refuses the benchmark in one line naming it."""
    bomb = bomb_png()
    assert len(bomb) < 2000
    files = _write_faces(faces, tmp_path / "train", "train", 3, nested=False, prefix="id")
    d = sorted(files)[0]
    (tmp_path / "train" / d / "bomb.png").write_bytes(bomb)
    data = read_image_folder(tmp_path / "train")
    reasons = dict(data.skipped)
    assert list(reasons) == [str(tmp_path / "train" / d / "bomb.png")]
    assert reasons[str(tmp_path / "train" / d / "bomb.png")].startswith("DecompressionBombError")
    assert len(data) == sum(len(v) for v in files.values())

    # 10000 x 10000 = 100 M pixels: PIL only warns (its limit is 2 x 89 M); no face image is that big
    (tmp_path / "train" / d / "bomb.png").write_bytes(bomb_png(10000, 10000))
    assert "bomb.png" in " ".join(p for p, _ in read_image_folder(tmp_path / "train").skipped)

    bench = _lfw_benchmark(faces, tmp_path / "lfw")
    sorted((tmp_path / "lfw").rglob("*_0001.png"))[0].write_bytes(bomb)  # in the first pair
    with pytest.raises(BenchmarkError, match=r"benchmark lfw \(.*\): cannot read image .*DecompressionBombError"):
        load_benchmark("lfw", bench, size=16)
    images, issame = read_bin(_bin(faces, tmp_path / "ok.bin"))
    (tmp_path / "bomb.bin").write_bytes(pickle.dumps(([bomb, *images[1:]], issame), protocol=4))
    with pytest.raises(BenchmarkError, match=r"benchmark b \(.*bomb.bin\): undecodable image .*DecompressionBomb"):
        load_benchmark("b", tmp_path / "bomb.bin", size=16)


def test_the_shared_cache_skips_what_the_check_of_unreadable_images_skips(faces, tmp_path, monkeypatch):
    """``da_lora`` decodes its training folder once into the shared cache, and that decoding is
    its check of unreadable images: the same images are skipped, for the same reasons, as the
    check every trainable runs (``read_image_folder``) gives, with no second pass over the files."""
    from trainables.data import sources

    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    files = _write_faces(faces, tmp_path / "train", "train", 6, nested=False, prefix="id")
    d = tmp_path / "train" / sorted(files)[0]
    whole = files[sorted(files)[1]][0].read_bytes()
    (d / "empty.png").write_bytes(b"")
    (d / "noise.png").write_bytes(os.urandom(300))
    (d / "truncated.png").write_bytes(whole[: len(whole) // 2])
    (d / "bomb.png").write_bytes(bomb_png())
    (d / "gone.png").symlink_to(tmp_path / "nowhere.png")
    expected = read_image_folder(tmp_path / "train")  # the check, as every trainable reads a folder
    assert len(expected.skipped) == 5
    cfg = DaLoraConfig(
        train_data=str(tmp_path / "train"),
        val_fraction=0,
        benchmarks={"lfw": str(_lfw_benchmark(faces, tmp_path / "lfw"))},
    )
    monkeypatch.setattr(sources, "find_unreadable", lambda paths: pytest.fail("a second pass over the files"))
    data = load_data(cfg, 32)
    assert sorted(data.train.skipped) == sorted(expected.skipped)
    assert data.train.paths == expected.paths and data.train.fingerprint == expected.fingerprint
    assert np.array_equal(data.train.identity, expected.identity)
