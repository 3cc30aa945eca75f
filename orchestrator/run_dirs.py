"""Run directories: created atomically, never one a user already has (``--out``,
``export-synthfaces``), and left without a trace when a run is refused."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import UserError
from reports.rundir.names import RESULTS_FILE, SPEC_FILE


def default_run_dir(study_name: str, quick: bool) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{study_name}{'-quick' if quick else ''}-{stamp}"


@dataclass
class NewRunDir:
    """A run directory this run may write into, and how to leave no trace if the run is
    refused before anything was computed: ``created`` is the top-most directory this run
    created (``--out a/b/c`` with none of them there: ``a``); None when ``path`` was an
    existing empty directory, which is emptied again."""

    path: Path
    created: Path | None

    def discard(self) -> None:
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.path.is_dir():
            for p in self.path.iterdir():  # the directory was empty: all of this is ours
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()


def prepare_run_dir(out: Path, *, default: bool = False, what: str | None = None, claim: str = SPEC_FILE) -> NewRunDir:
    """Create the run directory, or refuse in one line before writing anything.

    An existing directory is used only when it is empty: a run never writes into, or
    overwrites, what a user already has there (a run of this tool or anything else). The
    directory is made with an ``mkdir`` that fails if it exists, so two runs started at the
    same moment never share one: a ``default`` name (``runs/<study>-<timestamp>``) then gets
    a suffix (``-2``, ``-3``, ...); an explicit ``--out`` that another run just took is refused.
    An existing empty directory is claimed by creating ``claim`` in it exclusively.
    ``what`` names the path in messages (``--out DIR`` by default).
    """
    out = Path(out)
    what = what or f"--out {out}"
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} exists and is not a directory")
    if out.is_dir() and not default:
        if (out / RESULTS_FILE).exists():
            raise UserError(f"{what} already holds a run (results.csv); choose another directory")
        if any(out.iterdir()):
            raise UserError(
                f"{what} is a directory that is not empty; this tool writes only into a new or empty "
                "directory (nothing there is touched): choose another one"
            )
        try:  # claim it: of two runs given the same empty directory, one gets it
            os.close(os.open(out / claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise UserError(f"{what} was just taken by another run; choose another directory") from None
        except OSError as err:
            raise UserError(f"{what}: cannot write into it ({err.strerror})") from None
        return NewRunDir(out, None)
    top = out
    while not top.parent.exists() and not top.parent.is_symlink():
        top = top.parent
    if not top.parent.is_dir():
        raise UserError(
            f"{what}: {top.parent} is {'a broken link' if top.parent.is_symlink() else 'a file'}, not a directory"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):
            candidate = out if k == 1 else out.with_name(f"{out.name}-{k}")
            try:
                candidate.mkdir()
            except FileExistsError:
                if not default:
                    raise UserError(f"{what} was just created by another run; choose another directory") from None
                continue
            return NewRunDir(candidate, candidate if top == out else top)
        raise UserError(f"{what}: a thousand runs of this name exist already")
    except OSError as err:
        if top != out and top.exists():  # parents this call made before it failed
            shutil.rmtree(top, ignore_errors=True)
        raise UserError(f"{what}: cannot create the directory ({err.strerror})") from None
