"""What every refusal test shares: the one-line / exit 2 / nothing-touched contract, checked
through the real command line, and the files the cases are made of.

Each case is (id, files to make, argv, words the line must contain). Files are written by
``make_files`` before the snapshot; ``{d}`` in argv and file contents is the case's directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import textwrap
from pathlib import Path

from orchestrator.cli import main
from tests.orchestrator_tests.test_spec import GOOD

ABLATION = GOOD  # the small ablation the spec tests use
SEARCH = """
name: s
kind: search
trainable: da_lora
metric: val/cross_domain/acc
mode: max
seeds: [0]
num_samples: 4
base: {epochs: 2}
space:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
"""


def bomb_bin(d: Path) -> None:
    from tests.trainables_tests.test_real_inputs import bomb_png

    (d / "b.bin").write_bytes(pickle.dumps(([bomb_png(), bomb_png()], [True]), protocol=4))


def checked_run(d: Path, results: str | None, info: str | None, *, record: bool = True) -> None:
    """A run directory as the orchestrator writes it (checksums included), then damaged by the case."""
    from reports.rundir.files import write_checked

    (d / "r").mkdir()
    write_checked(
        d / "r",
        "run.json",
        json.dumps(
            {
                "study": "abl",
                "kind": "ablation",
                "trainable": "da_lora",
                "metric": "eval/x/acc",
                "mode": "max",
                "variants": ["a"],
                "reference": "a",
            }
        ),
    )
    write_checked(
        d / "r",
        "results.csv",
        "trial_name,variant,seed,status,eval/x/acc\na_seed0,a,0,TERMINATED,0.5\na_seed1,a,1,TERMINATED,0.6\n",
    )
    if results is not None:
        (d / "r" / "results.csv").write_text(results)
    if info is not None:
        (d / "r" / "run.json").write_text(info)
    if not record:  # a run made before checksums were kept
        (d / "r" / "checksums.sha256").unlink()


def standin_copy(d: Path, weights: bytes) -> None:
    from trainables.models.standin import StandinSpec, ensure_standin

    (d / "bb").mkdir()
    (d / "bb" / "config.json").write_bytes((ensure_standin(StandinSpec()) / "config.json").read_bytes())
    (d / "bb" / "model.safetensors").write_bytes(weights)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root: a folder, a link, or a file's sha256 and mode; but a run's lock
    file (``.lock``), which a writer that refuses after taking the run's lock leaves as it
    is left after every command (its holder record: no result, nothing a reader uses)."""
    from reports.rundir.names import LOCK_FILE

    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.name == LOCK_FILE and not p.is_dir():
            continue
        if p.is_symlink():
            out[rel] = "link " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {oct(p.stat().st_mode)}"
    return out


def make_files(d: Path, files: dict) -> None:
    from PIL import Image

    for rel, content in files.items():
        if callable(content):
            content(d)
            continue
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content.replace(b"{d}", str(d).encode()))
        else:
            path.write_text(textwrap.dedent(content).replace("{d}", str(d)))
    for name in ("x.png", "y.png"):
        Image.new("RGB", (8, 8)).save(d / name)


def check_refused(code: int, err: str, words: list[str]) -> None:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], f"{w!r} not in: {lines[0]}"


def refused_case(case, tmp_path, monkeypatch, capsys, no_ray) -> None:
    _, files, argv, words = case
    d = tmp_path / "work"
    d.mkdir()
    make_files(d, files)
    monkeypatch.chdir(d)
    before = snapshot(d)
    try:
        code = main([a.replace("{d}", str(d)) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    check_refused(code, err, [w.replace("{d}", str(d)) for w in words])
    assert snapshot(d) == before  # nothing written, nothing removed, nothing executed (no 'pwned')
    assert not no_ray


def synthfaces_test_pairs(d: Path, *, renamed: bool) -> None:
    """``pairs.txt``: same-person pairs over synthfaces' own test identities, made from its
    export (the study's data at its defaults); ``renamed`` copies the images into folders
    with other names, so that only their pixels give them away."""
    import shutil

    from trainables.da_lora.config import DaLoraConfig
    from trainables.data import synthfaces, synthfaces_export

    faces = d / "faces"
    synthfaces_export.export(synthfaces.load(DaLoraConfig().synthfaces()), faces)
    lines = []
    for k, person in enumerate(sorted((faces / "images").glob("eval*"))[:3]):
        a, b = sorted(person.glob("*.png"))[:2]
        if renamed:
            (d / "mine" / f"p{k}").mkdir(parents=True)
            a, b = (shutil.copy(x, d / "mine" / f"p{k}" / x.name) for x in (a, b))
        lines.append(f"{a} {b} 1")
    (d / "pairs.txt").write_text("\n".join(lines) + "\n")


def real_shaped(d: Path, *, domains: tuple[str, ...]) -> None:
    """``data/``: generated real-shaped data (a folder of 16 identities, a ``.bin``, a tiny
    DINOv2 folder) and ``real.yaml``, an ablation on it whose rows include the components
    that act per domain."""
    from trainables.data.real_shaped import RealShapedSpec, generate

    spec = RealShapedSpec(identities=16, images=4, domains=domains, benchmarks=("lfw",), pairs=200,
                          pair_list=False, backbones=("dinov2-tiny",))  # fmt: skip
    generate(d / "data", spec, log=lambda _: None)
    (d / "real.yaml").write_text(
        textwrap.dedent(
            f"""
            name: real
            kind: ablation
            trainable: da_lora
            metric: eval/lfw/acc
            mode: max
            seeds: [0, 1]
            reference: lora
            base: {{epochs: 1, backbone: {d}/data/backbones/dinov2-tiny, train_data: {d}/data/train,
                    benchmarks: {{lfw: {d}/data/lfw.bin}}, batch_size: 16, val_fraction: 0.3}}
            variants:
              lora: {{}}
              lora+domain_classifier: {{lambda_domain: 0.01}}
              lora+domain_lora: {{domain_lora: true}}
              lora+maml: {{maml_inner_steps: 3}}
            """
        )
    )
