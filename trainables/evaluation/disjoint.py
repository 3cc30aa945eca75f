"""Evaluation sets that must not meet: training identities and the people a study is tested
on, validation sets and test sets (the same file, a copy, shared images or named people),
and synthfaces' own held-out people. A study that chose on a test identity would report a
choice made on its test set; each check refuses that in one line (``DataError``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from trainables.data import synthfaces, synthfaces_export
from trainables.data.sources import DataError, TrainSet
from trainables.evaluation.benchmarks import PairBenchmark


def check_identity_overlap(train: TrainSet, benchmarks: list[PairBenchmark], role: str = "benchmark") -> None:
    """Refuse evaluation identities that were trained on, where both sides name them.

    synthfaces keeps its groups disjoint by construction; ``.bin`` files name nobody, so
    they cannot be checked (the README says so).
    """
    names = train.names()
    for b in benchmarks:
        _refuse_shared(
            f"{role} {b.name}", names & b.identity_names, "are also training identities",
            "evaluation must use identities the model never saw",
        )  # fmt: skip


def _refuse_shared(what: str, shared: set[str], are: str, hint: str) -> None:
    """One line naming how many people two sets share, three of them, and what to do."""
    if shared:
        both = sorted(shared)
        raise DataError(f"{what}: {len(both)} of its identities {are} (e.g. {', '.join(both[:3])}); {hint}")


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_same_files(val: dict[str, str], test: dict[str, str]) -> None:
    """Refuse a validation benchmark that is a test benchmark's file, however its path is
    spelt (resolved path) or wherever a copy of it lies (content digest): a study would
    choose on the test identities."""
    for v_name, v_path in val.items():
        for t_name, t_path in test.items():
            a, b = Path(v_path), Path(t_path)
            if not (a.is_file() and b.is_file()):
                continue  # a missing file is refused where it is loaded, in one line
            if a.resolve() == b.resolve() or (
                a.stat().st_size == b.stat().st_size and _file_digest(a) == _file_digest(b)
            ):
                raise DataError(
                    f"validation benchmark {v_name}: {v_path} is the test benchmark {t_name}'s file ({t_path}); "
                    "a choice made on it would be made on the test identities: validate on other people"
                )


def _image_digests(b: PairBenchmark) -> set[bytes]:
    return {hashlib.sha1(img.numpy().tobytes()).digest() for img in b.images}


def check_benchmark_overlap(val: list[PairBenchmark], test: list[PairBenchmark]) -> None:
    """Refuse validation benchmarks that share identities or images with a test benchmark: a
    choice made on them would be a choice made on the test identities."""
    for v in val:
        for t in test:
            shared = _image_digests(v) & _image_digests(t)
            if shared:
                raise DataError(
                    f"validation benchmark {v.name}: {len(shared)} of its images are also in test benchmark "
                    f"{t.name}; validation and test sets must not share images"
                )
            _refuse_shared(
                f"validation benchmark {v.name}", v.identity_names & t.identity_names,
                f"are also in test benchmark {t.name}", "validation and test identities must be disjoint",
            )  # fmt: skip


def check_synthfaces_test(val: list[PairBenchmark], synth: synthfaces.FaceSet, size: int) -> None:
    """synthfaces' test identities are known (its held-out group, ``eval0000``... in its export):
    refuse a validation benchmark that names one of them or holds one of their images, at the
    size the benchmark was read at."""
    from PIL import Image

    from trainables.data.sources import image_tensor

    if not val:
        return
    test = synth.group("eval")
    names = set(synthfaces_export.identity_names(synth)["eval"].values())
    digests: set[bytes] | None = None
    for v in val:
        _refuse_shared(
            f"validation benchmark {v.name}", names & v.identity_names, "are synthfaces' test identities",
            "validate on other people",
        )  # fmt: skip
        if digests is None:  # the test images as a pair list of the export would read them
            digests = {
                hashlib.sha1(image_tensor(Image.fromarray(img.transpose(1, 2, 0)), size).numpy().tobytes()).digest()
                for img in test.images
            }
        shared = _image_digests(v) & digests
        if shared:
            raise DataError(
                f"validation benchmark {v.name}: {len(shared)} of its images are synthfaces' test images; "
                "validate on other people"
            )
