"""Real-shaped data, generated: what a face-recognition researcher has on disk, at any size.

``python -m orchestrator generate-data DIR`` writes, with synthfaces' renderer (so that its
people can be told apart, and a study on them learns something)::

    train/<domain>/<identity>/<k>.jpg      aligned crops, 112 px like insightface's, JPEG
    train/<identity>/<k>.jpg               the same with one domain (no domain level)
    train.csv                              path,identity,domain: the manifest form of the same
    <benchmark>.bin                        insightface's format: (JPEG bytes, is-same flags),
                                           pairs in 10 contiguous folds, each half same, half not
    lfw_pairs/pairs.txt, lfw_pairs/<name>/<name>_0001.jpg    an LFW-style pair list and folders,
    lfw_pairs/attributes.csv               and a made-up attribute of its people (cohort A or B)
    TinyFace/Probe/, Gallery_Match/,       with --tinyface-subjects: a TinyFace-shaped folder (low-quality
      Gallery_Distractor/                  probes, <label>_<k>.jpg, and four distractors a subject)
    IJBC/loose_crop/, IJBC/meta/           with --ijb-subjects: an IJB-C-shaped folder (templates of
                                           media of frames, 1:1 template pairs, the 1:N galleries
                                           G1, G2 and mixed probes), in insightface's layout
    backbones/<family>-<shape>/            save_pretrained folders (random weights) at the real
                                           models' architecture, loaded by the code that loads a
                                           downloaded checkpoint

Every group of people (training, each benchmark, the pair list) is drawn apart, so no
benchmark identity is a training identity. Images are rendered and written in chunks:
memory does not grow with the number of images (a ``.bin`` holds its encoded images, as the
real ones do). Deterministic in its settings.

Nothing here is downloaded: a test, a benchmark and the tutorial run on it where a user
runs on CASIA-WebFace, LFW and a DINOv2 checkpoint.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from trainables.data._domains import DOMAINS
from trainables.data._render import N_IDENTITY_PARAMS, N_NUISANCE_PARAMS, render

#: Backbone shapes: the architecture of the real checkpoint each stands for (hidden size,
#: layers, heads, MLP size, patch, the input size its preprocessing crops to), and a tiny one
#: for tests. Weights are random: what is exercised is the loading path, not the features.
SHAPES = {
    "vits14": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=14),
    "vitb16": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, patch_size=16),
    "vitb14": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, patch_size=14),
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14),
}  # fmt: skip
FAMILIES = ("dinov2", "clip")
FOLDS = 10
JPEG_QUALITY = 90
CHUNK = 256  # images rendered at once


@dataclass(frozen=True)
class RealShapedSpec:
    """What ``generate-data`` writes (every field has a command-line option of its name)."""

    identities: int = 200
    """Training identities."""
    images: int = 10
    """Images per training identity, spread over the domains."""
    domains: tuple[str, ...] = ("visible", "thermal")
    """Training domains (synthfaces' names); one gives the flat ``train/<identity>/`` layout."""
    size: int = 112
    """Image side in pixels (insightface's aligned crops are 112)."""
    benchmarks: tuple[str, ...] = ("lfw",)
    """``.bin`` benchmarks to write, each over its own people."""
    pairs: int = 6000
    """Pairs per ``.bin`` (LFW: 6,000 in 10 folds of 300 same and 300 different)."""
    pair_list: bool = True
    """Also an LFW-style ``pairs.txt`` with its image folders (``lfw_pairs/``)."""
    backbones: tuple[str, ...] = ()
    """``family-shape`` folders to save, e.g. ``dinov2-vits14``, ``clip-vitb16``, ``dinov2-tiny``."""
    tinyface_subjects: int = 0
    """Subjects of a TinyFace-shaped folder (``TinyFace/``; 0: none): two low-quality probes and
    one or two gallery images each, and four distractor images of other people a subject."""
    ijb_subjects: int = 0
    """Subjects of an IJB-C-shaped folder (``IJBC/``; 0: none): each has a gallery template and
    two probe templates of 1-3 media of 1-3 frames; the 1:1 pairs are every (first probe
    template, second probe template) pair, the subjects alternate between galleries G1 and G2."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.identities < 2 or self.images < 2:
            raise ValueError("generate-data needs at least 2 identities and 2 images per identity")
        if not self.domains or any(d not in DOMAINS for d in self.domains):
            raise ValueError(
                f"--domains: expected some of {', '.join(DOMAINS)}, got {','.join(self.domains) or '(none)'}"
            )
        if self.size < 16 or self.size % 8:
            raise ValueError(f"--size {self.size}: expected a multiple of 8, at least 16")
        if self.tinyface_subjects and self.tinyface_subjects < 2:
            raise ValueError(f"--tinyface-subjects {self.tinyface_subjects}: expected 0 (none) or at least 2")
        if self.ijb_subjects and self.ijb_subjects < 4:
            raise ValueError(f"--ijb-subjects {self.ijb_subjects}: expected 0 (none) or at least 4")
        if self.pairs < 2 * FOLDS or self.pairs % (2 * FOLDS):
            raise ValueError(f"--pairs {self.pairs}: expected a multiple of {2 * FOLDS} (10 folds, half same)")
        for b in self.backbones:
            family, _, shape = b.partition("-")
            if family not in FAMILIES or shape not in SHAPES:
                raise ValueError(
                    f"--backbones {b}: expected FAMILY-SHAPE with FAMILY in {', '.join(FAMILIES)} "
                    f"and SHAPE in {', '.join(SHAPES)}"
                )


# ---------------------------------------------------------------- faces
def _people(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=(n, N_IDENTITY_PARAMS))


def _faces(params: np.ndarray, domains: list[str], size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """uint8 (H, W, 3) faces of ``params[i]`` seen in ``domains[i]``, rendered CHUNK at a time."""
    for start in range(0, len(params), CHUNK):
        p, d = params[start : start + CHUNK], domains[start : start + CHUNK]
        rgb, heat = render(p, rng.uniform(0.0, 1.0, size=(len(p), N_NUISANCE_PARAMS)), size)
        out = np.empty_like(rgb)
        for name in set(d):
            idx = np.flatnonzero(np.asarray(d) == name)
            out[idx] = DOMAINS[name](rgb[idx], heat[idx], rng)
        yield from np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _jpeg(face: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(face).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def write_train(root: Path, spec: RealShapedSpec, rng: np.random.Generator) -> int:
    """The training folders and their manifest; returns the number of images."""
    people = _people(spec.identities, rng)
    rows = [(i, spec.domains[k % len(spec.domains)], k) for i in range(spec.identities) for k in range(spec.images)]
    params = people[[r[0] for r in rows]]
    nested = len(spec.domains) > 1
    manifest = []
    for (i, domain, k), face in zip(rows, _faces(params, [r[1] for r in rows], spec.size, rng)):
        name = f"id{i:05d}"
        rel = Path("train", *([domain] if nested else []), name, f"{k:03d}.jpg")
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(_jpeg(face))
        manifest.append((str(rel), name, domain))
    with open(root / "train.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows([("path", "identity", "domain"), *manifest])
    return len(manifest)


def _pair_people(n_pairs: int, n_people: int, rng: np.random.Generator) -> list[tuple[int, int, bool]]:
    """(person a, person b, same) of every pair, in FOLDS contiguous folds, each half same."""
    per_fold = n_pairs // FOLDS
    out = []
    for _ in range(FOLDS):
        out += [(a, a, True) for a in rng.integers(0, n_people, per_fold // 2)]
        for _ in range(per_fold // 2):
            a, b = rng.choice(n_people, 2, replace=False)
            out.append((int(a), int(b), False))
    return out


def write_bin(path: Path, spec: RealShapedSpec, rng: np.random.Generator) -> int:
    """An insightface ``.bin`` over people of its own; returns the number of pairs."""
    n_people = max(2, spec.pairs // 20)  # LFW: 6,000 pairs over about 5,700 people; here about 20 pairs each
    people = _people(n_people, rng)
    pairs = _pair_people(spec.pairs, n_people, rng)
    who = [p for a, b, _ in pairs for p in (a, b)]
    domains = [spec.domains[int(x)] for x in rng.integers(0, len(spec.domains), len(who))]
    blobs = [_jpeg(face) for face in _faces(people[who], domains, spec.size, rng)]
    with open(path, "wb") as f:
        pickle.dump((blobs, [same for _, _, same in pairs]), f, protocol=4)
    return len(pairs)


def write_pair_list(root: Path, spec: RealShapedSpec, rng: np.random.Generator) -> int:
    """``pairs.txt`` in LFW's form (``10 300`` header; ``name i j`` same, ``name1 i name2 j``
    different) beside ``<name>/<name>_0001.jpg`` folders; returns the number of pairs."""
    n_pairs = min(spec.pairs, 600)
    per_person = 4
    n_people = max(2, n_pairs // 10)
    people = _people(n_people, rng)
    names = [f"person_{i:04d}" for i in range(n_people)]
    who = [i for i in range(n_people) for _ in range(per_person)]
    for j, face in enumerate(_faces(people[who], [spec.domains[0]] * len(who), spec.size, rng)):
        i, k = who[j], j % per_person + 1
        (root / names[i]).mkdir(parents=True, exist_ok=True)
        (root / names[i] / f"{names[i]}_{k:04d}.jpg").write_bytes(_jpeg(face))
    lines = [f"{FOLDS}\t{n_pairs // FOLDS // 2}"]
    for a, b, same in _pair_people(n_pairs, n_people, rng):
        i, j = rng.choice(per_person, 2, replace=False) + 1
        lines.append(f"{names[a]}\t{i}\t{j}" if same else f"{names[a]}\t{i}\t{names[b]}\t{j}")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    # an attribute of its people for fairness (``attributes: lfw_pairs/attributes.csv``): a
    # made-up cohort, A or B by turns (the renderer has no demographic attribute to draw on)
    cohorts = "".join(f"{name},{'AB'[i % 2]}\n" for i, name in enumerate(names))
    (root / "attributes.csv").write_text("identity,cohort\n" + cohorts)
    return n_pairs


def write_tinyface(root: Path, spec: RealShapedSpec, rng: np.random.Generator) -> int:
    """A TinyFace-shaped ``Testing_Set`` over people of its own; returns the number of probes."""
    n = spec.tinyface_subjects
    people = _people(5 * n, rng)  # the first n are the subjects, the rest the distractors' people
    parts = {"Probe": [], "Gallery_Match": [], "Gallery_Distractor": []}  # (person, file name, domain)
    for s in range(n):
        parts["Probe"] += [(s, f"{s + 1}_{k + 1}.jpg", "low_quality") for k in range(2)]
        parts["Gallery_Match"] += [(s, f"{s + 1}_{k + 1}.jpg", spec.domains[0]) for k in range(int(rng.integers(1, 3)))]
    parts["Gallery_Distractor"] = [(n + k, f"{k // 100:03d}/{k + 1}.jpg", spec.domains[0]) for k in range(4 * n)]
    for part, rows in parts.items():
        for (_, name, _), face in zip(rows, _faces(people[[r[0] for r in rows]], [r[2] for r in rows], spec.size, rng)):
            (root / part / name).parent.mkdir(parents=True, exist_ok=True)
            (root / part / name).write_bytes(_jpeg(face))
    return len(parts["Probe"])


def write_ijb(root: Path, spec: RealShapedSpec, rng: np.random.Generator) -> int:
    """An IJB-C-shaped folder over people of its own (see ``RealShapedSpec.ijb_subjects``); the
    media of a template in one domain each, its frames that media's images; returns the number
    of 1:1 template pairs."""
    n = spec.ijb_subjects
    people = _people(n, rng)
    images, rows = [], []  # (subject, domain); (image name, template, media)
    template = media = 0
    roles = {}  # template -> (subject, 0 gallery / 1, 2 probes)
    for s in range(n):
        for role in range(3):
            template += 1
            roles[template] = (s, role)
            for _ in range(int(rng.integers(1, 4))):
                media += 1
                domain = spec.domains[int(rng.integers(0, len(spec.domains)))]
                for _ in range(int(rng.integers(1, 4))):
                    rows.append((f"{len(images) + 1}.jpg", template, media))
                    images.append((s, domain))
    crops, meta = root / "loose_crop", root / "meta"
    crops.mkdir(parents=True)
    meta.mkdir()
    params = people[[s for s, _ in images]]
    for (name, _, _), face in zip(rows, _faces(params, [d for _, d in images], spec.size, rng)):
        (crops / name).write_bytes(_jpeg(face))
    (meta / "ijbc_face_tid_mid.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in rows))
    probe1 = {s: t for t, (s, r) in roles.items() if r == 1}
    probe2 = {s: t for t, (s, r) in roles.items() if r == 2}
    pairs = [(probe1[a], probe2[b], int(a == b)) for a in range(n) for b in range(n)]
    (meta / "ijbc_template_pair_label.txt").write_text("".join(f"{a} {b} {c}\n" for a, b, c in pairs))
    header = "TEMPLATE_ID,SUBJECT_ID,FILENAME\n"
    by_template: dict[int, list[str]] = {}
    for name, t, _ in rows:
        by_template.setdefault(t, []).append(name)

    def listing(templates) -> str:
        return header + "".join(f"{t},{roles[t][0]},img/{f}\n" for t in templates for f in by_template[t])

    gallery = [t for t, (s, r) in roles.items() if r == 0]
    (meta / "ijbc_1N_gallery_G1.csv").write_text(listing([t for t in gallery if roles[t][0] % 2 == 0]))
    (meta / "ijbc_1N_gallery_G2.csv").write_text(listing([t for t in gallery if roles[t][0] % 2 == 1]))
    (meta / "ijbc_1N_probe_mixed.csv").write_text(listing([t for t, (s, r) in roles.items() if r > 0]))
    return len(pairs)


# ---------------------------------------------------------------- backbones
def save_backbone(directory: Path, name: str, *, seed: int = 0) -> Path:
    """``family-shape`` (e.g. ``dinov2-vits14``) saved as ``save_pretrained`` does for the real
    checkpoint: a DINOv2 model, or a full CLIP model (its text tower tiny: only the vision
    tower is used) with a ``preprocessor_config.json`` as the hub's; random weights."""
    import torch
    import transformers

    family, _, shape = name.partition("-")
    vision = dict(SHAPES[shape])
    crop = 224 if shape != "tiny" else 28
    torch.manual_seed(seed)
    if family == "dinov2":
        # facebook/dinov2-*: 518 px position embeddings (interpolated), 224 px crops for inference
        model = transformers.Dinov2Model(transformers.Dinov2Config(**vision, image_size=518 if shape != "tiny" else 28))
        processor = {
            "image_processor_type": "BitImageProcessor",
            "crop_size": {"height": crop, "width": crop},
            "size": {"shortest_edge": crop * 8 // 7},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "do_center_crop": True,
        }
    else:
        text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        config = transformers.CLIPConfig(
            vision_config={**vision, "image_size": crop}, text_config=text, projection_dim=vision["hidden_size"] // 2
        )
        model = transformers.CLIPModel(config)
        processor = {
            "image_processor_type": "CLIPImageProcessor",
            "crop_size": {"height": crop, "width": crop},
            "size": {"shortest_edge": crop},
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "do_center_crop": True,
        }
    from trainables.models.backbone import quiet_transformers

    directory.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():  # no progress bar per shard
        model.save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return directory


# ---------------------------------------------------------------- all of it
def generate(root: Path, spec: RealShapedSpec, log: Callable[[str], None] = print) -> dict[str, int]:
    """Write everything ``spec`` asks for under ``root`` (which must be empty or new);
    returns what was written, counted."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    # each group of people from its own stream: adding a benchmark changes no training image
    counts["train images"] = write_train(root, spec, np.random.default_rng([spec.seed, 0]))
    log(f"train/: {spec.identities} identities x {spec.images} images in {len(spec.domains)} domain(s); train.csv")
    for k, name in enumerate(spec.benchmarks, start=1):
        counts[f"{name}.bin pairs"] = write_bin(root / f"{name}.bin", spec, np.random.default_rng([spec.seed, k]))
        log(f"{name}.bin: {spec.pairs} pairs in {FOLDS} folds")
    if spec.pair_list:
        n = write_pair_list(root / "lfw_pairs", spec, np.random.default_rng([spec.seed, 100]))
        counts["pairs.txt pairs"] = n
        log(f"lfw_pairs/pairs.txt: {n} pairs in LFW's form")
    if spec.tinyface_subjects:
        n = write_tinyface(root / "TinyFace", spec, np.random.default_rng([spec.seed, 300]))
        log(f"TinyFace/: {spec.tinyface_subjects} subjects, {n} probes, {4 * spec.tinyface_subjects} distractors")
    if spec.ijb_subjects:
        n = write_ijb(root / "IJBC", spec, np.random.default_rng([spec.seed, 200]))
        counts["IJBC template pairs"] = n
        log(f"IJBC/: {spec.ijb_subjects} subjects, {n} template pairs, 1:N galleries G1 and G2")
    for b in spec.backbones:
        save_backbone(root / "backbones" / b, b, seed=spec.seed)
        log(f"backbones/{b}: save_pretrained, random weights")
    return counts
