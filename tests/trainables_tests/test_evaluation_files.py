"""What an evaluation computed is kept beside the checkpoint (``evaluation.npz``): its format,
read back refused in one line when damaged, the recorder that collects it only inside a
recording, and the carrying of the latest and the best epoch's evaluation into every later
checkpoint. The trainables' own files are checked against the metrics they reported in
``test_da_lora.py`` and ``test_metric_trainables.py`` (``check_pairs``, ``check_ranks`` here)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from reports.rundir.evaluation import (
    BEST_DIR,
    EVAL_FILE,
    NO_FOLD,
    DamagedEvaluation,
    Evaluation,
    read_evaluation,
    trial_evaluation,
    write_evaluation,
)
from trainables.checkpointing import BestEpoch, parse_best_by, save_state
from trainables.evaluation.artifacts import fold_ids, record_embeddings, record_pairs, record_ranks, recording


# ---------------------------------------------------------------- references, from the definitions
def ten_fold_reference(scores: np.ndarray, labels: np.ndarray, folds: np.ndarray, threshold_of: int | None = None):
    """The k-fold protocol: for each fold, the threshold (``score >= t`` accepts) that maximises
    accuracy on the other folds, the lowest of equally good ones, is applied to the fold; the
    mean of the fold accuracies. Candidates: every cut between two distinct scores, and +-inf.
    ``threshold_of``: the threshold fold ``threshold_of`` is scored at, instead."""
    accs = []
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        s = np.unique(scores[train])
        candidates = [-np.inf, *((s[:-1] + s[1:]) / 2), np.inf]
        train_acc = [np.mean((scores[train] >= t) == (labels[train] == 1)) for t in candidates]
        t = candidates[int(np.argmax(train_acc))]
        if k == threshold_of:
            return float(t)
        accs.append(np.mean((scores[test] >= t) == (labels[test] == 1)))
    return float(np.mean(accs))


def auc_reference(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: the share of (genuine, impostor) pairs the genuine
    one scores higher, ties counting one half."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def eer_reference(scores: np.ndarray, labels: np.ndarray) -> float:
    """The equal error rate: over the operating points ``score >= t`` (t = +inf, then each
    distinct score from the highest), the FPR where the false reject rate FNR stops exceeding
    it, interpolated linearly between the two points around the crossing."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    ts = [np.inf, *np.unique(scores)[::-1]]
    fpr = np.array([np.mean(neg >= t) for t in ts])
    fnr = np.array([np.mean(pos < t) for t in ts])
    diff = fnr - fpr
    j = int(np.flatnonzero(diff <= 0)[0])
    if diff[j] == 0 or j == 0:
        return float(fpr[j])
    w = diff[j - 1] / (diff[j - 1] - diff[j])
    return float(fpr[j - 1] + w * (fpr[j] - fpr[j - 1]))


def check_pairs(ev: Evaluation, metrics: dict[str, float]) -> list[str]:
    """Every recorded pair set reproduces the metrics reported under its prefix: 10-fold accuracy
    from the recorded folds, or the accuracy at the recorded threshold; AUC; EER. Returns the
    sets scored by folds (the others have no fold: -1)."""
    for name, p in ev.pairs.items():
        s, y = p["scores"].astype(np.float64), p["labels"].astype(int)
        assert set(np.unique(y)) <= {0, 1} and len(s) == len(y)
        if (p["folds"] != NO_FOLD).any():
            assert (p["folds"] >= 0).all() and metrics[f"{name}/acc"] == pytest.approx(
                ten_fold_reference(s, y, p["folds"]), abs=1e-12
            ), name
            assert len(p["fold_thresholds"]) == len(np.unique(p["folds"]))
            for k, t in enumerate(p["fold_thresholds"]):  # each fold's threshold, chosen on the others
                assert t == ten_fold_reference(s, y, p["folds"], threshold_of=k), (name, k)
        else:
            assert (p["folds"] == NO_FOLD).all()
            if "threshold" in p:
                assert metrics[f"{name}/threshold"] == pytest.approx(p["threshold"], abs=1e-12)
                assert metrics[f"{name}/acc"] == pytest.approx(np.mean((s >= p["threshold"]) == (y == 1)), abs=1e-12)
        assert f"{name}/auc" in metrics or f"{name}/eer" in metrics, name
        if f"{name}/auc" in metrics:
            assert metrics[f"{name}/auc"] == pytest.approx(auc_reference(s, y), abs=1e-9), name
        if f"{name}/eer" in metrics:
            assert metrics[f"{name}/eer"] == pytest.approx(eer_reference(s, y), abs=1e-9), name
    return sorted(n for n, p in ev.pairs.items() if (p["folds"] != NO_FOLD).any())


def check_ranks(ev: Evaluation, metrics: dict[str, float]) -> list[str]:
    """Rank-1 and rank-5 as reported are the shares of probes whose true identity ranked first
    or in the first five; no other identity scored higher than a rank-1 probe's own."""
    for name, r in ev.ranks.items():
        assert metrics[f"{name}/rank1"] == pytest.approx(np.mean(r["mate_rank"] <= 1), abs=1e-12)
        assert metrics[f"{name}/rank5"] == pytest.approx(np.mean(r["mate_rank"] <= 5), abs=1e-12)
        first = r["mate_rank"] == 1
        assert (r["nonmate_score"][first] < r["mate_score"][first]).all()
        assert metrics[f"{name}/probes"] == len(r["identity"])
    return sorted(ev.ranks)


# ---------------------------------------------------------------- the format
def _evaluation() -> Evaluation:
    rng = np.random.default_rng(0)
    ev = Evaluation(3)
    ev.pairs["eval/lfw"] = {
        "scores": rng.random(20).astype(np.float32),
        "labels": np.tile([1, 0], 10),
        "folds": fold_ids(20, 10),
    }
    ev.pairs["eval/pairs"] = {
        "scores": rng.random(6),
        "labels": [1, 1, 0, 0, 1, 0],
        "folds": np.full(6, NO_FOLD),
        "threshold": 0.25,
    }
    ev.ranks["eval/gallery"] = {
        "mate_rank": [1, 3],
        "mate_score": [0.9, 0.2],
        "nonmate_score": [0.1, 0.5],
        "identity": [4, 7],
    }
    ev.embeddings["eval"] = {"vectors": rng.random((5, 4)), "identity": np.arange(5), "domain": np.zeros(5)}
    ev.routing["eval"] = {"weights": rng.dirichlet(np.ones(3), 5), "domain": [0, 1, 2, 1, 0]}
    ev.adapters = ["visible", "thermal", "sketch+low"]
    return ev


def test_an_evaluation_file_reads_back_as_written(tmp_path):
    ev = _evaluation()
    write_evaluation(tmp_path / EVAL_FILE, ev)
    back = read_evaluation(tmp_path / EVAL_FILE)
    assert back.epoch == 3 and sorted(back.pairs) == ["eval/lfw", "eval/pairs"] and list(back.ranks) == ["eval/gallery"]
    assert np.array_equal(back.pairs["eval/lfw"]["scores"], ev.pairs["eval/lfw"]["scores"])
    assert back.pairs["eval/lfw"]["scores"].dtype == np.float32 and back.pairs["eval/lfw"]["labels"].dtype == np.int8
    assert back.pairs["eval/pairs"]["threshold"] == 0.25 and "threshold" not in back.pairs["eval/lfw"]
    assert back.ranks["eval/gallery"]["mate_rank"].tolist() == [1, 3]
    vectors = back.embeddings["eval"]["vectors"]
    assert vectors.dtype == np.float16 and vectors.shape == (5, 4)
    assert np.allclose(vectors, ev.embeddings["eval"]["vectors"], atol=1e-3)  # float16: 3 decimals
    weights = back.routing["eval"]["weights"]
    assert weights.dtype == np.float16 and weights.shape == (5, 3) and back.adapters == ev.adapters
    assert np.allclose(weights, ev.routing["eval"]["weights"], atol=1e-3)
    assert back.routing["eval"]["domain"].tolist() == [0, 1, 2, 1, 0]
    with zipfile.ZipFile(tmp_path / EVAL_FILE) as z:  # compressed, and no pickle inside
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in z.infolist())


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "not an evaluation file"),
        (lambda p: p.write_text("scores"), "not an evaluation file"),
        (lambda p: np.savez(p, **{"pairs/eval/x/scores": np.zeros(2, np.float32)}), "no meta"),
    ],
    ids=["truncated", "text", "no-meta"],
)
def test_a_damaged_evaluation_file_is_refused_in_one_line(tmp_path, damage, words):
    path = tmp_path / EVAL_FILE
    write_evaluation(path, _evaluation())
    damage(path)
    with pytest.raises(DamagedEvaluation, match=words) as err:
        read_evaluation(path)
    assert "\n" not in str(err.value)


def test_arrays_of_another_type_or_length_are_refused(tmp_path):
    import json

    meta = np.array(json.dumps({"version": 1, "epoch": 1}))
    good = {"scores": np.zeros(3, np.float32), "labels": np.zeros(3, np.int8), "folds": np.zeros(3, np.int16)}
    for bad, words in (
        ({**good, "labels": np.zeros(3, np.float64)}, "labels is missing or not int8"),
        ({**good, "folds": np.zeros(2, np.int16)}, "different lengths"),
        ({"scores": good["scores"]}, "labels is missing"),
    ):
        np.savez(tmp_path / "e.npz", meta=meta, **{f"pairs/eval/x/{k}": v for k, v in bad.items()})
        with pytest.raises(DamagedEvaluation, match=words):
            read_evaluation(tmp_path / "e.npz")
    # routing weights: one row per image, as many rows as domain indices
    for weights, words in (
        (np.zeros(3, np.float16), "weights is missing or not float16"),  # one value per image: not a matrix
        (np.zeros((2, 3), np.float16), "different lengths"),
    ):
        arrays = {"routing/eval/weights": weights, "routing/eval/domain": np.zeros(3, np.int16)}
        np.savez(tmp_path / "e.npz", meta=meta, **arrays)
        with pytest.raises(DamagedEvaluation, match=words):
            read_evaluation(tmp_path / "e.npz")


def test_fold_ids_are_the_contiguous_folds_of_the_protocol():
    # 23 pairs in 10 folds: numpy's array_split gives the first 3 folds 3 pairs, the rest 2
    assert fold_ids(23, 10).tolist() == [0] * 3 + [1] * 3 + [2] * 3 + sum(([k] * 2 for k in range(3, 10)), [])


def test_nothing_is_recorded_outside_a_recording_and_embeddings_only_when_asked():
    record_pairs("eval/x", [0.5], [1])  # no recording: nothing happens, nothing fails
    with recording(1) as ev:
        record_pairs("eval/x", [0.5, 0.1], [1, 0], folds=2)
        record_ranks("eval/gallery", [1], [0.9], [0.2], [3])
        record_embeddings("eval", torch.zeros(2, 4), [0, 1], [0, 0])
    assert list(ev.pairs) == ["eval/x"] and list(ev.ranks) == ["eval/gallery"] and not ev.embeddings
    assert ev.pairs["eval/x"]["folds"].tolist() == [0, 1]
    with recording(1, embeddings=True) as ev:
        record_embeddings("eval", torch.zeros(2, 4), [0, 1], [0, 0])
    assert ev.embeddings["eval"]["vectors"].shape == (2, 4)


# ---------------------------------------------------------------- carried into every checkpoint
def test_the_latest_and_the_best_epochs_evaluation_travel_in_every_checkpoint(tmp_path):
    """Epochs 1-4, evaluated at 1, 2 and 4 (``eval_every``); the best by the validation metric
    is epoch 2. Every checkpoint holds the latest evaluation, and ``best/`` epoch 2's."""
    val = {1: 0.5, 2: 0.7, 4: 0.6}
    kept = {}
    reporter = BestEpoch(lambda m, d: None, parse_best_by("val/x/acc:max"))
    for e in range(1, 5):
        d = tmp_path / f"ckpt{e}"
        d.mkdir()
        save_state(d, {"model": {"w": torch.full((2,), float(e))}, "epoch": e})
        if e in val:
            write_evaluation(d / EVAL_FILE, Evaluation(e, pairs={"val/x": _evaluation().pairs["eval/lfw"]}))
        reporter({"train/epochs": float(e), **({"val/x/acc": val[e]} if e in val else {})}, d)
        kept[e] = d
    latest = {1: 1, 2: 2, 3: 2, 4: 4}
    best = {1: 1, 2: 2, 3: 2, 4: 2}
    for e, d in kept.items():
        assert read_evaluation(d / EVAL_FILE).epoch == latest[e], e
        assert read_evaluation(d / BEST_DIR / EVAL_FILE).epoch == best[e], e
    # a resumed trial goes on with what its checkpoint held
    resumed = BestEpoch(lambda m, d: None, parse_best_by("val/x/acc:max"), restore_from=kept[3])
    d = tmp_path / "ckpt4-resumed"
    d.mkdir()
    save_state(d, {"model": {"w": torch.zeros(2)}, "epoch": 4})
    resumed({"train/epochs": 4.0}, d)  # not evaluated: epoch 2's evaluation, the best still epoch 2's
    assert read_evaluation(d / EVAL_FILE).epoch == 2 and read_evaluation(d / BEST_DIR / EVAL_FILE).epoch == 2


def test_the_report_finds_a_trials_latest_checkpoint_in_any_experiment(tmp_path):
    for where in ("tune/s_t1_seed0/checkpoint_000001", "tune-ext1/s_t1_seed0/checkpoint_000003"):
        (tmp_path / where / BEST_DIR).mkdir(parents=True)
        write_evaluation(tmp_path / where / EVAL_FILE, Evaluation(int(where[-1])))
    (tmp_path / "tune/s_t1_seed0/checkpoint_000002").mkdir()  # a checkpoint without an evaluation
    assert (
        trial_evaluation(tmp_path, "s", "t1_seed0") == tmp_path / "tune-ext1/s_t1_seed0/checkpoint_000003" / EVAL_FILE
    )
    assert trial_evaluation(tmp_path, "s", "t1_seed0", best=True) is None
    assert trial_evaluation(tmp_path, "s", "t2_seed0") is None
    # a trial restarted after its driver was killed: Tune found its folder taken and made
    # another (``_<4 hex>``), where the newest checkpoint is; another trial's folder is not its
    for where, epoch in (("tune/s_t2_seed0/checkpoint_000000", 1), ("tune/s_t2_seed0_d512/checkpoint_000001", 2),
                         ("tune/s_t2_seed01/checkpoint_000005", 9), ("tune/s_t2_seed0_x/checkpoint_000007", 9)):  # fmt: skip
        (tmp_path / where).mkdir(parents=True)
        write_evaluation(tmp_path / where / EVAL_FILE, Evaluation(epoch))
    assert read_evaluation(trial_evaluation(tmp_path, "s", "t2_seed0")).epoch == 2


def evaluation_of(checkpoint: Path) -> Evaluation:
    return read_evaluation(Path(checkpoint) / EVAL_FILE)
