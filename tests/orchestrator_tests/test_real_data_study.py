"""The shipped real-data ablation, --quick, end to end to its report on generated real-shaped
data: an image folder with two domains, two insightface ``.bin`` benchmarks and a
``save_pretrained`` DINOv2 folder, read through the folder and ``.bin`` loaders and the
shared decoded-image cache, with the spec's relative paths read from where it was started."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from trainables.data import image_cache

DOC = Path(__file__).resolve().parents[2] / "docs" / "real-data.md"
#: The only changes made to the tutorial's commands: CI's scale (a tiny backbone, fewer images)
#: and three epochs evaluated each, so that a trial's best epoch can differ from its last.
AT_CI_SCALE = {
    "--backbones dinov2-vits14": "--backbones dinov2-tiny --identities 24 --images 4 --pairs 200 --no-pair-list",
    "--ijb-subjects 200": "--ijb-subjects 12",
    "--tinyface-subjects 100": "--tinyface-subjects 8",
    "--set backbone=data/backbones/dinov2-vits14": "--set backbone=data/backbones/dinov2-tiny --set batch_size=16 "
    "--set epochs=3 --set eval_every=1",
}


def doc_commands(kind: str) -> list[str]:
    """The commands of the tutorial's ``kind`` blocks (bash: run by the tests; console: parsed),
    continuation lines joined, comments dropped."""
    blocks = re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.strip()]


@pytest.fixture(scope="module")
def real_run(ray_local, tmp_path_factory):
    """(the folder, each command's output): the tutorial's commands run in order in a new
    folder, as a user would, at CI's scale (``AT_CI_SCALE``)."""
    tmp_path = tmp_path_factory.mktemp("real")
    outputs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        mp.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
        for command in doc_commands("bash"):
            assert command.startswith("python -m orchestrator "), command
            for doc, ci in AT_CI_SCALE.items():
                command = command.replace(doc, ci)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(shlex.split(command)[3:]) == 0, command
            outputs[" ".join(shlex.split(command)[3:5])] = out.getvalue()
        yield tmp_path, outputs


def test_the_tutorials_commands_leave_what_it_says(real_run):
    import numpy as np

    root, outputs = real_run
    assert (root / "runs" / "real-quick" / "report" / "index.html").is_file()
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "peft-adapter"} <= {
        p.name for p in (root / "models" / "lora").iterdir()
    }
    gallery = np.load(root / "gallery.npz")
    assert {"embeddings", "paths", "identity"} <= set(gallery.files)
    assert len(gallery["paths"]) == len(list((root / "data" / "train").rglob("*.jpg")))
    assert outputs["cache clear"].startswith(f"cleared {root / 'cache' / 'images'}")


def test_the_tutorials_other_commands_parse():
    """Those that need a GPU or a cluster are not run here; their options must exist."""
    from orchestrator.cli import build_parser

    commands = [c for c in doc_commands("console") if "python -m orchestrator" in c]
    assert len(commands) == 2
    for command in commands:
        argv = shlex.split(command[command.index("python -m orchestrator") :])[3:]
        build_parser().parse_args(argv)  # exits (status 2) on an unknown option


def test_the_real_data_ablation_runs_quick_on_generated_data(real_run):
    tmp_path, outputs = real_run
    out = outputs["run ablation-real"]
    df = pd.read_csv(tmp_path / "runs" / "real-quick" / "results.csv")
    assert sorted(set(df["variant"])) == ["da_lora", "lora", "lora+domain_lora"] and len(df) == 6
    assert (df["status"] == "TERMINATED").all(), df[["trial_name", "status", "error"]]
    for m in ("eval/mean/acc", "eval/lfw/acc", "eval/cfp_fp/acc", "val/heldout/acc"):
        assert df[m].between(0, 1).all(), m
    mean = df[["eval/lfw/acc", "eval/cfp_fp/acc"]].mean(axis=1)
    assert (df["eval/mean/acc"] - mean).abs().max() < 1e-9  # the mean over the benchmarks
    # the IJB-C folder's template 1:1 and open-set 1:N, read from its metadata files
    for m in ("eval/ijbc/templates/tar@far=1e-1", "eval/ijbc/templates/auc", "eval/ijbc/open_set/mean/rank1"):
        assert df[m].between(0, 1).all(), m
    assert (df["eval/ijbc/templates/impostor_pairs"] == 12 * 12 - 12).all()
    assert df["eval/ijbc/templates/tar@far=1e-3"].isna().all()  # 132 impostor pairs cannot measure 1e-3
    # the TinyFace folder: closed-set identification with its distractors in the gallery
    assert (df["eval/tinyface/rank1"] <= df["eval/tinyface/rank5"]).all() and df["eval/tinyface/rank10"].le(1).all()
    assert (df["eval/tinyface/probes"] == 16).all() and (df["eval/tinyface/distractors"] == 32).all()
    config = json.loads((tmp_path / "runs" / "real-quick" / "configs.json").read_text())
    some = next(iter(config.values()))
    assert some["train_data"] == str(tmp_path / "data" / "train")  # made absolute where it was started
    assert (tmp_path / "runs" / "real-quick" / "report" / "index.html").is_file()
    listed = outputs["cache list"].splitlines()  # the tutorial's "cache list", before its "cache clear"
    assert sorted(line.split("\t")[1] for line in listed[:-1]) == ["bin", "bin", "files", "files", "files"], listed
    # one for the training folder (its held-out validation identities are rows of it), one per
    # benchmark, one for the IJB-C folder's crops and one for the TinyFace folder's images
    assert listed[-1].startswith(f"5 caches in {tmp_path / 'cache' / 'images'}")
    assert out.count("decoded ") == 5  # built once, by the driver, for every trial
    # every trial was handed the data its study prepared (trainables.data.snapshot): one record,
    # named by the sha256 of its content, for the variants' one folder and two benchmarks
    # which way each metric is better: run.json holds the trainable's declaration for every key it reports
    from trainables import get_trainable

    info = json.loads((tmp_path / "runs" / "real-quick" / "run.json").read_text())
    entry = get_trainable("da_lora")
    assert set(info["metric_directions"]) == {k for c in config.values() for k in entry.reported_keys(c)}
    assert all(way == entry.direction(k) for k, way in info["metric_directions"].items())
    assert info["metric_directions"]["train/cosface_loss"] == "min"  # a loss (the old rule of names said max)
    # and what the report calls each: the trainable's name for every key it reports
    assert info["metric_names"] == {k: entry.display_name(k) for k in info["metric_directions"]}
    assert info["metric_names"]["train/cosface_loss"] == "cosface loss"
    (snapshot,) = set(df["data_snapshot"])
    assert Path(snapshot).parent == (tmp_path / "cache" / "images").resolve()
    assert re.fullmatch(r"[0-9a-f]{32}\.snapshot\.json", Path(snapshot).name)


#: Run in a fresh interpreter with this project's packages made unimportable: the exported
#: folder must load, and embed, with transformers and peft alone.
WITHOUT_THE_PROJECT = r"""
import json, sys
for name in ("orchestrator", "trainables", "reports"):
    sys.modules[name] = None  # any import of this project fails
import numpy as np, torch, transformers, peft
model_dir, source, images, out = sys.argv[1:5]
info = json.load(open(f"{model_dir}/preprocessor_config.json"))
side = json.load(open(f"{model_dir}/orchestrator-embedding.json"))  # image size and flip test, as data
x = torch.from_numpy(np.load(images)).float()
x = (x - torch.tensor(info["image_mean"]).view(1, 3, 1, 1) * 255) / (torch.tensor(info["image_std"]).view(1, 3, 1, 1) * 255)
x = torch.nn.functional.interpolate(x, size=info["crop_size"]["height"], mode="bilinear", align_corners=False)
def embed(model):
    with torch.no_grad():
        e = model(pixel_values=x).pooler_output
        if side["flip_test"]:
            e = e + model(pixel_values=x.flip(-1)).pooler_output
    return torch.nn.functional.normalize(e, dim=1).numpy()
merged = transformers.AutoModel.from_pretrained(model_dir).eval()
adapted = peft.PeftModel.from_pretrained(transformers.AutoModel.from_pretrained(source), f"{model_dir}/peft-adapter").eval()
np.savez(out, merged=embed(merged), adapter=embed(adapted))
"""


def test_the_best_epoch_is_exported_and_embeds_as_the_trial_did(real_run, tmp_path, monkeypatch):
    """``export`` writes the best epoch's backbone (by the validation metric) with LoRA merged,
    and its peft adapter; both load without this project and give the trial's embeddings, and
    ``embed`` gives them for a folder. Asked for what it cannot write, it refuses in one line."""
    import subprocess
    import sys

    import numpy as np
    import torch

    from trainables.checkpointing import load_state
    from trainables.da_lora.config import DaLoraConfig
    from trainables.da_lora.loop import trained_backbone
    from trainables.models.export import image_list
    from trainables.training import embed_all

    root, _ = real_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(root / "cache"))
    run = root / "runs" / "real-quick"
    df = pd.read_csv(run / "results.csv")
    curves = pd.read_csv(run / "curves.csv")
    for _, row in df.iterrows():  # the best epoch, by definition: the first epoch of the highest val/heldout/acc
        c = curves[(curves["trial_name"] == row["trial_name"]) & (curves["key"] == "val/heldout/acc")]
        c = c.sort_values("iteration")
        assert row["train/best_epoch"] == c["iteration"].iloc[int(np.argmax(c["value"].to_numpy()))]
    assert (
        "best epoch by the validation metric <code>val/heldout/acc</code>"
        in (run / "report" / "index.html").read_text()
    )

    best_epochs = df.set_index("trial_name")["train/best_epoch"]
    trial = next((t for t in ("lora_seed0", "lora_seed1") if best_epochs[t] != 3), "lora_seed0")  # plain LoRA
    assert main(["export", str(run), "--trial", trial, "--out", "model", "--adapter"]) == 0
    cfg = DaLoraConfig.model_validate(json.loads((run / "configs.json").read_text())[trial])
    (checkpoint,) = (run / "tune").glob(f"ablation-real_{trial}/checkpoint_*")
    best = load_state(checkpoint / "best")
    assert best["epoch"] == df.set_index("trial_name").loc[trial, "train/best_epoch"]
    written = json.loads((tmp_path / "model" / "orchestrator-embedding.json").read_text())
    assert (written["epoch"], written["chosen_by"]) == (best["epoch"], "val/heldout/acc")

    # the trial's own embeddings: its model rebuilt from the best epoch's tensors, LoRA not merged,
    # embedded by the evaluation's function with the trial's flip test
    paths = image_list(root / "data" / "train")
    images = np.stack([image_cache.decode(str(p), cfg.image_size) for p in paths])
    own = embed_all(trained_backbone(cfg, best["model"]), torch.from_numpy(images), flip=cfg.flip_test).numpy()
    last = trained_backbone(cfg, load_state(checkpoint)["model"])
    if best["epoch"] != 3:  # then exporting the last epoch's model instead would fail below
        assert np.abs(own - embed_all(last, torch.from_numpy(images), flip=cfg.flip_test).numpy()).max() > 1e-3

    assert main(["embed", "model", str(root / "data" / "train"), "--out", "gallery.npz"]) == 0
    gallery = np.load(tmp_path / "gallery.npz")
    assert list(gallery["paths"]) == [str(p.relative_to(root / "data" / "train")) for p in paths]
    assert list(gallery["identity"]) == [p.parent.name for p in paths]
    np.testing.assert_allclose(gallery["embeddings"], own, atol=1e-4)

    np.save(tmp_path / "images.npy", images)
    script = [sys.executable, "-I", "-c", WITHOUT_THE_PROJECT, "model", str(root / "data" / "backbones" / "dinov2-tiny"),
              "images.npy", "plain.npz"]  # fmt: skip
    subprocess.run(script, check=True, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    plain = np.load(tmp_path / "plain.npz")
    np.testing.assert_allclose(plain["merged"], own, atol=1e-4)
    np.testing.assert_allclose(plain["adapter"], own, atol=1e-4)


def test_what_cannot_be_exported_is_refused_in_one_line(real_run, tmp_path, monkeypatch, capsys):
    from tests.orchestrator_tests.refusals import snapshot

    root, _ = real_run
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(root / "cache"))
    run = str(root / "runs" / "real-quick")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("a user's file")
    before = snapshot(tmp_path), snapshot(root / "runs")
    cases = [
        (["export", run, "--trial", "da_lora_seed0", "--out", "m"], "domain-aware LoRA with 2 domains"),
        (["export", run, "--trial", "nobody", "--out", "m"], "--trial nobody: no such trial"),
        (["export", run, "--trial", "lora_seed0", "--out", "taken"], "not empty"),
        (["export", str(tmp_path), "--trial", "lora_seed0", "--out", "m"], "not a run directory"),
        (["embed", "nowhere", str(root / "data" / "train"), "--out", "g.npz"], "is not a directory"),
        (["embed", str(root / "data" / "backbones" / "dinov2-tiny"), "taken", "--out", "g.npz"], "no images"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert (snapshot(tmp_path), snapshot(root / "runs")) == before  # nothing written, nothing touched
