"""The notes' JSON formats: person, twin and feedback-pair files, and synthfaces' export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables.data.json_lists import read_feedback_pairs, read_persons
from trainables.data.sources import DataError


def _img(path: Path, value: int = 0) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture()
def people(tmp_path):
    persons = {}
    for name, n in (("ann", 3), ("bea", 2), ("cid", 1), ("dan", 2)):
        persons[name] = [f"img/{name}/{k}.png" for k in range(n)]
        for k in range(n):
            _img(tmp_path / "img" / name / f"{k}.png", value=10 * k)
    (tmp_path / "persons.json").write_text(json.dumps(persons))
    (tmp_path / "twins.json").write_text(json.dumps([["ann", "bea"]]))
    return tmp_path


def test_person_and_twin_files_are_read_with_paths_relative_to_the_file(people):
    ps = read_persons(people / "persons.json", people / "twins.json")
    assert ps.names == ("ann", "bea", "cid", "dan")
    assert len(ps) == 8 and np.bincount(ps.identity).tolist() == [3, 2, 1, 2]
    assert all(Path(p).is_file() and str(people) in p for p in ps.paths)
    assert ps.twins == ((1,), (0,), (), ()) and ps.twin_pairs() == [(0, 1)]
    sub = ps.subset(np.array([1, 3]), "x")
    assert sub.names == ("bea", "dan") and sub.twins == ((), ()) and np.bincount(sub.identity).tolist() == [2, 2]


@pytest.mark.parametrize(
    "persons, twins, message",
    [
        ({"ann": []}, None, "identity 'ann': no images"),
        ({"ann": ["img/ann/0.png"], "zed": ["img/zed/9.png"]}, None, "1 image files do not exist"),
        ({"ann": "img/ann/0.png"}, None, "expected a list of image paths"),
        ([["ann"]], None, "expected a non-empty object"),
        ({"ann": ["img/ann/0.png"]}, [["ann", "nobody"]], "pair 0: identity 'nobody' is not in the person file"),
        ({"ann": ["img/ann/0.png"]}, [["ann", "ann"]], "paired with itself"),
        ({"ann": ["img/ann/0.png"]}, [["ann"]], "expected two identity names"),
    ],
)
def test_bad_person_and_twin_files_are_refused_in_one_line(people, persons, twins, message):
    (people / "p.json").write_text(json.dumps(persons))
    twin_file = None
    if twins is not None:
        (people / "t.json").write_text(json.dumps(twins))
        twin_file = people / "t.json"
    with pytest.raises(DataError, match=message) as err:
        read_persons(people / "p.json", twin_file)
    assert "\n" not in str(err.value)


def test_person_file_that_is_not_json_or_missing(people):
    (people / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not JSON"):
        read_persons(people / "bad.json")
    with pytest.raises(DataError, match="no such file"):
        read_persons(people / "absent.json")


def test_unreadable_images_are_skipped_and_counted(people):
    (people / "img" / "ann" / "2.png").write_bytes(b"")
    ps = read_persons(people / "persons.json")
    assert len(ps) == 7 and [p for p, _ in ps.skipped] == [str(people / "img" / "ann" / "2.png")]
    (people / "img" / "cid" / "0.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="identity 'cid': none of its images can be read"):
        read_persons(people / "persons.json")


def test_feedback_pairs(people):
    pairs = [
        {"image1": "img/ann/0.png", "image2": "img/ann/1.png", "label": 1},
        {"image1": "img/ann/0.png", "image2": "img/bea/0.png", "label": 0},
    ]
    (people / "pairs.json").write_text(json.dumps(pairs))
    fp = read_feedback_pairs(people / "pairs.json", identity_from_folder=True)
    assert len(fp) == 2 and fp.label.tolist() == [1, 0]
    assert fp.left.tolist() == [0, 0] and fp.right.tolist() == [1, 2]  # one index per distinct image
    assert fp.identity == ("ann", "ann", "bea")
    assert read_feedback_pairs(people / "pairs.json").identity is None


@pytest.mark.parametrize(
    "pair, message",
    [
        ({"image1": "img/ann/0.png", "image2": "img/ann/1.png", "label": 2}, "pair 0: label must be 0 .* got 2"),
        ({"image1": "img/ann/0.png", "image2": "img/ann/1.png", "label": "1"}, 'got "1"'),
        ({"image1": "img/ann/0.png", "image2": "img/ann/1.png", "label": True}, "got true"),
        ({"image1": "img/ann/0.png", "label": 1}, "needs image1, image2 and label"),
        ({"image1": "img/ann/0.png", "image2": "img/nobody/1.png", "label": 0}, "image .*nobody/1.png does not exist"),
        ({"image1": "img/ann/0.png", "image2": "img/ann/0.png", "label": 1}, "the same file"),
    ],
)
def test_bad_feedback_pairs_are_refused_in_one_line(people, pair, message):
    (people / "pairs.json").write_text(json.dumps([pair]))
    with pytest.raises(DataError, match=message) as err:
        read_feedback_pairs(people / "pairs.json")
    assert "\n" not in str(err.value)


def test_feedback_labels_that_contradict_the_folders_are_refused(people):
    (people / "pairs.json").write_text(json.dumps([{"image1": "img/ann/0.png", "image2": "img/bea/0.png", "label": 1}]))
    with pytest.raises(DataError, match="labelled 1, but its folders say otherwise"):
        read_feedback_pairs(people / "pairs.json", identity_from_folder=True)


def test_synthfaces_export_reads_back_as_the_same_data(cache_dir):
    from trainables.data import synthfaces
    from trainables.data.synthfaces_export import FEEDBACK, PERSONS, TWINS, ensure_export

    spec = synthfaces.SynthFacesSpec(
        train_identities=12, eval_identities=10, train_images=2, eval_images=2, domains=("visible", "thermal")
    )
    faces = synthfaces.load(spec)
    d = ensure_export(spec)
    assert ensure_export(spec) == d  # cached
    train = read_persons(d / PERSONS["train"], d / TWINS["train"])
    test = read_persons(d / PERSONS["eval"], d / TWINS["eval"])
    g = faces.group("train")
    assert train.num_identities == 12 and len(train) == len(g) == 12 * 2 * 2
    assert not set(train.names) & set(test.names)
    # the images are synthfaces' own pixels, identity by identity
    first = int(g.identity.min())
    for k in (0, 5, 11):
        mine = sorted(np.asarray(Image.open(p)).tobytes() for p in np.asarray(train.paths)[train.images_of(k)])
        theirs = sorted(im.transpose(1, 2, 0).tobytes() for im in g.images[g.identity == first + k])
        assert mine == theirs
    # twins as synthfaces made them
    expected = sorted(
        {
            tuple(sorted((a - first, int(faces.twin_of[a]) - first)))
            for a in np.unique(g.identity)
            if faces.twin_of[a] >= 0
        }
    )
    assert train.twin_pairs() == expected and len(expected) == round(12 * spec.twin_fraction / 2)
    for group, ps in (("train", train), ("eval", test)):
        fp = read_feedback_pairs(d / FEEDBACK[group], identity_from_folder=True)
        assert set(fp.label.tolist()) == {0, 1} and fp.label.sum() == len(fp) // 2 == 4 * ps.num_identities
        assert set(fp.identity) == set(ps.names)  # each file keeps to its group's people


def test_a_pair_of_one_image_with_itself_is_refused_however_it_is_spelt(tmp_path):
    from PIL import Image

    from trainables.data.json_lists import read_feedback_pairs
    from trainables.data.sources import DataError

    (tmp_path / "d").mkdir()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "d" / "x.png")
    Image.new("RGB", (8, 8), (30, 20, 10)).save(tmp_path / "d" / "y.png")
    (tmp_path / "link.png").symlink_to(tmp_path / "d" / "x.png")
    for other in ("d/../d/x.png", "./d/x.png", "link.png"):
        (tmp_path / "pairs.json").write_text(json.dumps([{"image1": "d/x.png", "image2": other, "label": 1}]))
        with pytest.raises(DataError, match="pair 0: image1 and image2 are the same file"):
            read_feedback_pairs(tmp_path / "pairs.json")
    (tmp_path / "pairs.json").write_text(json.dumps([{"image1": "d/x.png", "image2": "d/../d/y.png", "label": 0}]))
    fp = read_feedback_pairs(tmp_path / "pairs.json")
    assert fp.paths == (str(tmp_path / "d" / "x.png"), str(tmp_path / "d" / "y.png"))  # one spelling per file
