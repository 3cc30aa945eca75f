"""Closed-set identification with distractors from TinyFace's folders, on a generated
TinyFace-shaped folder: the ranks against a brute-force computation from the protocol's
definition (every gallery image scored at once), streamed in chunks that cut through the
gallery, distractors that can only push a probe down, and bad folders refused in one line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from trainables.data.real_shaped import RealShapedSpec, write_tinyface
from trainables.evaluation import tinyface
from trainables.evaluation.artifacts import recording
from trainables.evaluation.tinyface import (
    IdentificationError,
    evaluate_identification,
    load_identification,
    read_identification,
)

SUBJECTS = 10


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("tinyface") / "TinyFace"
    write_tinyface(
        root, RealShapedSpec(identities=2, images=2, size=16, tinyface_subjects=SUBJECTS), np.random.default_rng(0)
    )
    return root


def _embed(x: torch.Tensor) -> torch.Tensor:
    """A fixed embedding (mean colour per quadrant, normalised): deterministic, no model."""
    q = x.float().unflatten(2, (2, -1)).unflatten(4, (2, -1)).mean(dim=(3, 5))
    return torch.nn.functional.normalize(q.flatten(1), dim=1)


def _ranks_by_definition(bench):
    """Each probe: 1 + the gallery images (another identity's, or distractors) scoring at least
    as high as its best image of its own identity; every score computed at once."""
    f = bench.files
    e = _embed(bench.images).double().numpy()
    n_probe, n_match, _ = bench.counts
    probes, gallery = e[:n_probe], e[n_probe:]
    labels = list(f.gallery_ids) + [None] * len(f.distractors)
    ranks = []
    for p, pid in zip(probes, f.probe_ids):
        scores = gallery @ p
        mate = max(s for s, g in zip(scores, labels) if g == pid)
        ranks.append(1 + sum(1 for s, g in zip(scores, labels) if g != pid and s >= mate))
    return np.array(ranks)


def test_the_folder_reads_as_written(folder):
    f = read_identification(folder)
    assert len(f.probes) == 2 * SUBJECTS and len(f.distractors) == 4 * SUBJECTS
    assert sorted(set(f.probe_ids.tolist()), key=int) == [str(s + 1) for s in range(SUBJECTS)]
    assert set(f.probe_ids) <= set(f.gallery_ids)


def test_ranks_follow_the_definition_across_chunks(folder, monkeypatch):
    monkeypatch.setattr(tinyface, "CHUNK_IMAGES", 3)  # chunks cut through probes, gallery and distractors
    bench = load_identification("tinyface", folder, size=16)
    want = _ranks_by_definition(bench)
    with recording(1) as ev:
        out = evaluate_identification(_embed, bench, "eval")
    assert ev.ranks["eval/tinyface"]["mate_rank"].tolist() == want.tolist()
    for k in (1, 5, 10):
        assert out[f"eval/tinyface/rank{k}"] == pytest.approx(np.mean(want <= k))
    assert (out["eval/tinyface/probes"], out["eval/tinyface/distractors"]) == (2 * SUBJECTS, 4 * SUBJECTS)
    assert sorted(out) == sorted(f"eval/tinyface/{k}" for k in tinyface.IDENTIFICATION_KEYS)


def test_distractors_can_only_push_a_probe_down(folder, tmp_path):
    without = tmp_path / "TinyFace"
    shutil.copytree(folder, without)
    shutil.rmtree(without / "Gallery_Distractor")
    few = _ranks_by_definition(load_identification("t", without, size=16))
    many = _ranks_by_definition(load_identification("t", folder, size=16))
    assert (many >= few).all() and (many > few).any()


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda r: shutil.rmtree(r / "Probe"), "no Probe/"),
        (lambda r: (r / "Probe" / "noidentity.jpg").write_bytes(b"x"), "names no identity"),
        (lambda r: (r / "Probe" / "999_1.jpg").write_bytes(b"x"), "probe identity 999 has no image in Gallery_Match/"),
    ],
    ids=["no-probe", "unnamed", "no-gallery-image"],
)
def test_bad_folders_are_refused_in_one_line(folder, tmp_path, damage, words):
    root = tmp_path / "TinyFace"
    shutil.copytree(folder, root)
    damage(root)
    with pytest.raises(IdentificationError, match=words) as err:
        read_identification(root)
    assert "\n" not in str(err.value)


def test_a_hand_checked_case_with_a_tie_and_the_smallest_gallery():
    """One probe (1, 0) of identity 1; gallery: identity 1 at (0.6, 0.8) (score 0.6), identity 2
    at (0.6, -0.8) (score 0.6: a tie, counted against the probe); distractors (1, 0) (score 1,
    ahead) and (0, 1) (score 0, behind). Rank 1 + 2 = 3; best non-mate score 1."""
    from pathlib import Path

    from trainables.evaluation.tinyface import IdentificationBenchmark, IdentificationFiles, streamed_ranks

    vectors = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    files = IdentificationFiles(
        [Path("1_1.jpg")], np.array(["1"]), [Path("1_1.jpg"), Path("2_1.jpg")], np.array(["1", "2"]),
        [Path("a.jpg"), Path("b.jpg")],
    )  # fmt: skip
    bench = IdentificationBenchmark("t", torch.arange(5), files)
    rank, mate, nonmate = streamed_ranks(lambda rows: vectors[rows], bench)
    assert (rank.tolist(), mate.tolist(), nonmate.tolist()) == ([3], [pytest.approx(0.6)], [1.0])
