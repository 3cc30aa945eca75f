"""``generate-data``: real-shaped data read back through the loaders a researcher's own data
goes through (image folders, manifests, insightface ``.bin``, LFW pair lists, save_pretrained
backbones), with the layout and fold structure those formats define."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from orchestrator.cli import main
from trainables.data.real_shaped import FOLDS, SHAPES
from trainables.data.sources import read_image_folder, read_manifest
from trainables.evaluation.benchmarks import load_benchmark, read_bin, read_pairs_txt
from trainables.models.backbone import load_backbone


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "data"
    argv = ["generate-data", str(root), "--identities", "6", "--images", "4", "--pairs", "40",
            "--benchmarks", "lfw,cfp_fp", "--backbones", "dinov2-tiny,clip-tiny"]  # fmt: skip
    assert main(argv) == 0
    return root


def _digests(blobs) -> set[str]:
    return {hashlib.sha256(b).hexdigest() for b in blobs}


def test_training_folders_and_manifest_are_one_data_set(data):
    """``train/<domain>/<identity>/*.jpg`` read as an image folder with two domains, and the
    manifest naming the same files with the same identity and domain."""
    folder = read_image_folder(data / "train")
    assert len(folder) == 6 * 4 and folder.domains == ("visible", "thermal")
    assert len(np.unique(folder.identity)) == 6
    with open(data / "train.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and all(Path(data / r["path"]).parts[-4:-2] == ("train", r["domain"]) for r in rows)
    assert all(Path(r["path"]).parent.name == r["identity"] for r in rows)
    manifest = read_manifest(data / "train.csv")
    by_path = {Path(p).resolve(): (folder.identity_names[i], folder.domains[d])
               for p, i, d in zip(folder.paths, folder.identity, folder.domain)}  # fmt: skip
    assert {Path(p).resolve(): (manifest.identity_names[i], manifest.domains[d])
            for p, i, d in zip(manifest.paths, manifest.identity, manifest.domain)} == by_path  # fmt: skip


def test_one_domain_gives_the_flat_layout(tmp_path):
    assert main(["generate-data", str(tmp_path / "d"), "--identities", "3", "--images", "2", "--domains", "visible",
                 "--pairs", "20", "--no-pair-list", "--benchmarks", ""]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "d" / "train").iterdir()) == ["id00000", "id00001", "id00002"]
    assert len(read_image_folder(tmp_path / "d" / "train").domains) == 1
    assert not list((tmp_path / "d").glob("*.bin")) and not (tmp_path / "d" / "lfw_pairs").exists()


def test_bin_benchmarks_are_insightface_folds_over_people_of_their_own(data):
    """Each ``.bin``: two JPEGs per pair, 10 contiguous folds, each half same-person pairs
    then half different (LFW's layout); no image in it is a training image or another
    benchmark's."""
    train = _digests(p.read_bytes() for p in (data / "train").rglob("*.jpg"))
    seen: set[str] = set()
    for name in ("lfw", "cfp_fp"):
        blobs, issame = read_bin(data / f"{name}.bin")
        assert len(blobs) == 2 * len(issame) == 80
        per_fold = len(issame) // FOLDS
        for k in range(FOLDS):
            fold = issame[k * per_fold : (k + 1) * per_fold]
            assert fold == [True] * (per_fold // 2) + [False] * (per_fold // 2)
        mine = _digests(blobs)
        assert not mine & train and not mine & seen
        seen |= mine
        bench = load_benchmark(name, data / f"{name}.bin", size=28)
        assert tuple(bench.images.shape) == (80, 3, 28, 28)


def test_the_pair_list_is_lfws_form(data):
    """``pairs.txt``: a ``10 N`` header, then per fold N ``name i j`` lines and N
    ``name1 i name2 j`` lines, every image at ``<name>/<name>_<i:04d>.jpg``."""
    lines = (data / "lfw_pairs" / "pairs.txt").read_text().splitlines()
    folds, n = map(int, lines[0].split())
    assert folds == FOLDS and len(lines) == 1 + 2 * n * folds
    for k in range(folds):
        block = [ln.split() for ln in lines[1 + 2 * n * k : 1 + 2 * n * (k + 1)]]
        assert [len(b) for b in block] == [3] * n + [4] * n
    left, right, label, names = read_pairs_txt(data / "lfw_pairs" / "pairs.txt")
    assert len(left) == n * folds * 2 and int(label.sum()) == n * folds
    assert all(p.parent.name == p.name.rsplit("_", 1)[0] for p in left + right)
    assert names == {p.parent.name for p in left + right}


@pytest.mark.parametrize("name, dim", [("dinov2-tiny", 32), ("clip-tiny", 32)])
def test_backbone_folders_load_as_downloaded_checkpoints(data, name, dim):
    """The folders load through ``load_backbone``, the code a downloaded checkpoint takes (a
    full CLIP model gives its vision tower), with the preprocessing of its
    ``preprocessor_config.json``."""
    import torch

    directory = data / "backbones" / name
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == name.split("-")[0]
    processor = json.loads((directory / "preprocessor_config.json").read_text())
    backbone = load_backbone(str(directory))
    assert backbone.input_spec.size == processor["crop_size"]["height"] == 28
    assert backbone.input_spec.mean == tuple(processor["image_mean"])
    x = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    assert backbone.eval()(x).shape == (2, dim)


@pytest.mark.slow
def test_a_vit_s14_folder_has_the_real_architecture(tmp_path):
    """dinov2-vits14: the architecture of facebook/dinov2-small (384 wide, 12 layers of 6
    heads, 14 px patches), 224 px crops, loaded and run as that checkpoint would be."""
    from trainables.data.real_shaped import save_backbone

    directory = save_backbone(tmp_path / "dinov2-vits14", "dinov2-vits14")
    config = json.loads((directory / "config.json").read_text())
    assert {k: config[k] for k in SHAPES["vits14"]} == SHAPES["vits14"]
    backbone = load_backbone(str(directory))
    assert backbone.input_spec.size == 224 and backbone.embed_dim == 384


def test_relative_paths_are_made_absolute_where_the_config_is_first_read(tmp_path, monkeypatch):
    """A config's file keys (``PATH_FIELDS``) are made absolute from the working directory
    they are given in, so that a trial (another working directory) finds them; a prefix
    (``hf:``) is kept, the embedded data's and backbone's names and paths that do not exist
    here stay as written (refused where they are loaded, as written)."""
    from trainables.da_lora.config import DaLoraConfig

    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "data" / "lfw.bin").write_bytes(b"")
    (tmp_path / "bb").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = DaLoraConfig(train_data="data/train", benchmarks={"lfw": "data/lfw.bin", "x": "nowhere.bin"},
                       backbone="hf:bb", lora_targets=("data",))  # fmt: skip
    assert cfg.train_data == str(tmp_path / "data" / "train")
    assert cfg.benchmarks == {"lfw": str(tmp_path / "data" / "lfw.bin"), "x": "nowhere.bin"}
    assert cfg.backbone == f"hf:{tmp_path / 'bb'}"
    assert cfg.lora_targets == ("data",)  # not a file key: never touched, though ./data exists
    assert DaLoraConfig().train_data == "synthfaces" and DaLoraConfig().backbone == "standin"
