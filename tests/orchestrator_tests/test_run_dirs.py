"""Run directories and where a run may go: never into a directory a user already has,
created atomically, nothing left behind by a refused run, and an ``--address`` checked
before Ray is handed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import UserError
from tests.orchestrator_tests.test_spec import GOOD, _write


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    assert main(["run", "ablation", "--quick", "--out", str(target)]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def _checksums(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("study", ["GOOD", "BAD"])
def test_a_directory_that_is_not_empty_is_never_written_into(tmp_path, capsys, study):
    """--out at a user's own directory (not empty, not a run): refused before anything is
    written, whether the run would be accepted or not; every byte stays as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "spec.yaml").write_text("my own notes\n")
    (mine / "run.json").write_text('{"mine": true}\n')
    (mine / "sub").mkdir()
    (mine / "sub" / "data.bin").write_bytes(bytes(range(256)))
    before = _checksums(mine)
    text = GOOD if study == "GOOD" else GOOD.replace("epochs: 1", "epochs: -1")
    assert main(["run", _write(tmp_path, text), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if study == "GOOD":
        assert "is a directory that is not empty" in err
    assert _checksums(mine) == before and sorted(p.name for p in mine.iterdir()) == ["run.json", "spec.yaml", "sub"]


def test_run_directories_are_created_atomically(tmp_path):
    """Two runs whose default directory names coincide (started in the same second) get
    distinct directories; an explicit --out taken meanwhile is refused."""
    from orchestrator.run_dirs import prepare_run_dir

    name = tmp_path / "runs" / "ablation-20261201-120000"
    first = prepare_run_dir(name, default=True)
    second = prepare_run_dir(name, default=True)
    assert first.path == name and second.path == name.with_name(name.name + "-2")
    assert first.path.is_dir() and second.path.is_dir()
    (first.path / "results.csv").write_text("x\n")
    with pytest.raises(UserError, match="already holds a run"):
        prepare_run_dir(name)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_run_dir(empty).path == empty  # an existing empty directory is fine


def test_a_refused_run_leaves_no_parent_directories(tmp_path, capsys, standin):
    """--out a/b/c refused while the trainable prepares (here: LoRA targets that match no
    layer): nothing it created stays behind, parents included; an empty --out stays empty."""
    study = _write(tmp_path, GOOD)
    deep = tmp_path / "a" / "b" / "c"
    assert main(["run", study, "--out", str(deep), "--set", "lora_targets=[q_proj]"]) == 2
    assert "match no linear layer" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", study, "--out", str(empty), "--set", "lora_targets=[q_proj]"]) == 2
    assert empty.is_dir() and not any(empty.iterdir())


@pytest.mark.parametrize(
    "address, message",
    [
        ("127.0.0.1:1", "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1"),
        ("127.0.0.1", "--address '127.0.0.1': expected HOST:PORT"),
    ],
)
def test_an_address_where_nothing_listens_fails_in_seconds(tmp_path, capsys, address, message):
    """Checked with one TCP connect to exactly the address given (loopback here), before Ray
    is handed it: Ray would retry for minutes, and connect to another address."""
    assert main(["run", _write(tmp_path, GOOD), "--out", str(tmp_path / "run"), "--address", address]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()
