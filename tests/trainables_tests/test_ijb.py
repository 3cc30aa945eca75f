"""IJB-B/C from their standard metadata files, on a generated IJB-C-shaped folder: the files read
as written, the streamed template features and the protocols' numbers against computations
written here from the definitions, bad metadata refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.trainables_tests.test_protocols import open_set_reference, tar_reference
from trainables.data.real_shaped import RealShapedSpec, write_ijb
from trainables.evaluation import ijb
from trainables.evaluation.ijb import IjbError, evaluate_ijb, load_ijb, read_ijb, streamed_template_features

SUBJECTS = 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("ijb") / "IJBC"
    spec = RealShapedSpec(identities=2, images=2, size=16, ijb_subjects=SUBJECTS, domains=("visible", "thermal"))
    write_ijb(root, spec, np.random.default_rng(0))
    return root


def test_the_metadata_reads_as_the_folder_was_written(folder):
    f = read_ijb(folder)
    assert f.prefix == "ijbc" and len(f.images) == len(list((folder / "loose_crop").iterdir()))
    assert all(p.is_file() for p in f.images)
    # every (first probe template, second probe template) pair: one genuine per subject
    assert len(f.label) == SUBJECTS**2 and f.label.sum() == SUBJECTS
    (t1, s1), (t2, s2) = f.galleries
    assert sorted(np.concatenate([s1, s2]).tolist()) == list(range(SUBJECTS)) and not set(s1) & set(s2)
    tp, sp = f.probes
    assert len(tp) == 2 * SUBJECTS and sorted(set(sp.tolist())) == list(range(SUBJECTS))


def _definition(emb, template, media):
    """A template: the mean of each media's frames, summed over its media, normalised."""
    out = {}
    for t in np.unique(template):
        v = sum(emb[(template == t) & (media == m)].mean(axis=0) for m in np.unique(media[template == t]))
        out[int(t)] = v / np.linalg.norm(v)
    return out


def _embed(x: torch.Tensor) -> torch.Tensor:
    """A fixed embedding of the images (their mean colour per quadrant): deterministic, no model."""
    q = x.float().unflatten(2, (2, -1)).unflatten(4, (2, -1)).mean(dim=(3, 5))
    return torch.nn.functional.normalize(q.flatten(1), dim=1)


def test_streamed_template_features_follow_the_definition_across_chunks(folder, monkeypatch):
    monkeypatch.setattr(ijb, "CHUNK_IMAGES", 7)  # chunks that cut through media and templates
    bench = load_ijb("ijbc", folder, size=16)
    ids, feats = streamed_template_features(_embed, bench)
    want = _definition(_embed(bench.images).double().numpy(), bench.files.template, bench.files.media)
    assert ids.tolist() == sorted(want)
    for t, v in zip(ids, feats):
        assert np.allclose(v, want[int(t)], atol=1e-12)


def test_the_protocols_numbers_follow_their_definitions(folder, monkeypatch):
    """TAR at each FAR over the template pairs (only from enough impostors), and the two-gallery
    open set (each gallery scored on its own, the other's probes non-mated)."""
    monkeypatch.setattr(ijb, "CHUNK_PAIRS", 50)  # pairs scored in chunks
    bench = load_ijb("ijbc", folder, size=16)
    f = bench.files
    out = evaluate_ijb(_embed, bench, "eval")
    feats = _definition(_embed(bench.images).double().numpy(), f.template, f.media)
    scores = np.array([feats[int(a)] @ feats[int(b)] for a, b in zip(f.first, f.second)])
    for far, key in ((1e-1, "1e-1"), (1e-2, "1e-2"), (1e-3, "1e-3")):
        want = tar_reference(scores, f.label, far)
        got = out[f"eval/ijbc/templates/tar@far={key}"]
        assert (want is None and np.isnan(got)) or got == pytest.approx(want, abs=1e-6), far
    assert out["eval/ijbc/templates/impostor_pairs"] == SUBJECTS**2 - SUBJECTS
    (t1, s1), (t2, s2) = f.galleries
    tp, sp = f.probes
    rows = lambda ts: np.stack([feats[int(t)] for t in ts])  # noqa: E731
    for g, (t, s), other in (("g1", (t1, s1), s2), ("g2", (t2, s2), s1)):
        mated = np.isin(sp, s)
        want = open_set_reference(rows(t), s, rows(tp[mated]), sp[mated], rows(tp[np.isin(sp, other)]), 1e-1)
        assert out[f"eval/ijbc/open_set/{g}/tpir@fpir=1e-1"] == pytest.approx(want), g
    mean = (out["eval/ijbc/open_set/g1/rank1"] + out["eval/ijbc/open_set/g2/rank1"]) / 2
    assert out["eval/ijbc/open_set/mean/rank1"] == pytest.approx(mean)


def test_the_keys_a_config_declares_are_those_reported(folder, tmp_path):
    """The template keys always; the open-set keys where the folder has its 1:N lists."""
    import shutil

    from trainables.da_lora.config import ijb_keys

    out = evaluate_ijb(_embed, load_ijb("ijbc", folder, size=16), "eval")
    assert sorted(ijb_keys("eval/ijbc", str(folder))) == sorted(out)
    one_to_one = tmp_path / "IJBC"
    shutil.copytree(folder, one_to_one)
    for p in (one_to_one / "meta").glob("*_1N_*"):
        p.unlink()
    out = evaluate_ijb(_embed, load_ijb("ijbc", one_to_one, size=16), "eval")
    assert sorted(ijb_keys("eval/ijbc", str(one_to_one))) == sorted(out)
    assert not any("/open_set/" in k for k in out)


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda m: (m / "ijbc_face_tid_mid.txt").unlink(), "expected one meta/<ijbb|ijbc>_face_tid_mid.txt"),
        (lambda m: (m / "ijbc_template_pair_label.txt").unlink(), "no meta/ijbc_template_pair_label.txt"),
        (lambda m: (m / "ijbc_template_pair_label.txt").write_text("1 99999 1\n"), "template 99999 has no image"),
        (lambda m: (m / "ijbc_template_pair_label.txt").write_text("1 2 yes\n"), "value 'yes' is not an integer"),
        (lambda m: (m / "ijbc_template_pair_label.txt").write_text("1 2 3\n"), "a label is not 0 or 1"),
        (lambda m: (m / "ijbc_face_tid_mid.txt").write_text("1.jpg 1\n"), "expected 3 columns"),
        (
            lambda m: (m / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n77777,1\n"),
            "77777 has no image",
        ),
    ],
    ids=["no-tid-mid", "no-pairs", "unknown-template", "not-int", "bad-label", "short-line", "unknown-probe"],
)
def test_bad_metadata_is_refused_in_one_line(folder, tmp_path, damage, words):
    import shutil

    root = tmp_path / "IJBC"
    shutil.copytree(folder, root)
    damage(root / "meta")
    with pytest.raises(IjbError, match=words) as err:
        read_ijb(root)
    assert "\n" not in str(err.value)
