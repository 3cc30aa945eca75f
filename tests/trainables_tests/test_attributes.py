"""Fairness on real data: an attribute file of a pair list's people, each pair's group (the value
both its people share), and the evaluation that keeps them in ``evaluation.npz``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reports.rundir.evaluation import NO_GROUP
from trainables.data.real_shaped import RealShapedSpec, write_pair_list
from trainables.evaluation.attributes import AttributeFileError, read_attributes


class Flat(torch.nn.Module):
    """A fixed linear embedding of the (uint8) images: no backbone needed to score pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3 * 16 * 16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.float().flatten(1))


@pytest.fixture(scope="module")
def pair_list(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs") / "lfw_pairs"
    write_pair_list(root, RealShapedSpec(identities=2, images=2, size=16, pairs=200), np.random.default_rng(0))
    return root


def test_each_pair_is_in_the_group_both_its_people_share(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("identity,ethnicity\nann,x\nbob,y\ncid,x\n")
    attrs = read_attributes(path)
    assert (attrs.name, attrs.values) == ("ethnicity", ("x", "y"))
    people = ("ann", "bob", "cid", "dan")  # dan is not listed
    left, right = np.array([0, 0, 1, 3, 2]), np.array([2, 1, 1, 0, 2])
    assert attrs.pair_groups(people, left, right).tolist() == [0, NO_GROUP, 1, NO_GROUP, 0]


@pytest.mark.parametrize(
    "text, words",
    [
        ("identity\nann\n", "expected a header 'identity,<attribute>'"),
        ("identity,g\nann,x\nann,y\n", "ann is listed twice"),
        ("identity,g\nann,\n", "line 2: expected '<identity>,<value>'"),
        ("identity,g\nann,x\nbob,x\n", "at least two values of g"),
    ],
)
def test_a_bad_attribute_file_is_refused_in_one_line(tmp_path, text, words):
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(AttributeFileError, match=words) as err:
        read_attributes(tmp_path / "a.csv")
    assert "\n" not in str(err.value)


def test_the_evaluation_keeps_each_pairs_people_and_group(pair_list, cache_dir):
    """A pair-list benchmark evaluated with attributes: its pairs' first person (the bootstrap's
    unit) and their group, as the file and the pair list say, with the attribute's name and values."""
    from trainables.da_lora.evaluate import Evaluator
    from trainables.evaluation.artifacts import recording
    from trainables.evaluation.benchmarks import load_benchmark

    bench = load_benchmark("lfw", pair_list / "pairs.txt", size=16)
    attrs = read_attributes(pair_list / "attributes.csv")
    evaluator = object.__new__(Evaluator)
    evaluator.flip, evaluator.attributes = False, attrs
    torch.manual_seed(0)
    embed = Flat()
    with recording(1) as ev:
        out = evaluator._benchmarks(embed, [bench], "eval", {})
    pairs = ev.pairs["eval/lfw"]
    assert "eval/lfw/acc" in out and (ev.grouping, ev.groups) == ("cohort", ["A", "B"])
    for k, (a, b) in enumerate(zip(bench.left, bench.right)):
        pa, pb = bench.image_identity[a], bench.image_identity[b]
        assert sorted(set(bench.image_identity))[pairs["identity"][k]] == pa
        want = ["A", "B"].index(attrs.of[pa]) if attrs.of[pa] == attrs.of[pb] else NO_GROUP
        assert pairs["group"][k] == want
    assert (pairs["group"] != NO_GROUP).any() and (pairs["group"] == NO_GROUP).any()
