"""The run directory's tables, written so that a damaged copy is told from an intact one.

``results.csv``, ``configs.json`` and ``run.json`` are rewritten while a run goes on, and
read by ``status``, ``report``, ``resume`` and ``run confirm``, possibly after a crash, a
full disk or a careless copy. Each rewrite is atomic (a temporary file, then ``os.replace``)
and is recorded in ``checksums.sha256``, in ``sha256sum``'s format, so that a reader (or
``sha256sum --check checksums.sha256``) can tell the file from one truncated or edited.

The record is updated in two steps around each replacement: first it lists the new digest
beside the old one, then the file is replaced, then only the new digest remains. Whatever
moment a process dies at, the file on disk matches a digest in the record. Python's
standard library and pandas have no such "atomic file with a checksum" helper; this is the
smallest one that keeps that property.

The orchestrator writes through it and the reports read through it; it imports neither.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from reports.rundir.info import RunInfo
from reports.rundir.names import (
    CHECKSUMS_FILE,
    CONFIGS_FILE,
    CURVE_COLUMNS,
    CURVES_FILE,
    RESULTS_FILE,
    RUN_FILE,
    STATUSES,
    TERMINATED,
)

RESULTS_REQUIRED = ("trial_name", "seed", "status")
RUN_REQUIRED = {"study": str, "kind": str, "metric": str, "mode": str}


class RunDirError(ValueError):
    """A directory that cannot be read as a run (not a run, or damaged): one line, exit status 2."""


class DamagedRunFile(RunDirError):
    """A run file is truncated, edited or not what this tool writes; the message says which."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checksums(run_dir: Path) -> dict[str, list[str]]:
    """File name -> the digests it may have (one, or two during a rewrite)."""
    path = Path(run_dir) / CHECKSUMS_FILE
    out: dict[str, list[str]] = {}
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return out
    except (OSError, UnicodeDecodeError) as err:
        raise DamagedRunFile(f"{path}: unreadable ({err})") from None
    for n, line in enumerate(text.splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not name:
            raise DamagedRunFile(f"{path}: line {n} is not '<sha256>  <file>': the file is damaged")
        out.setdefault(name, []).append(digest)
    return out


def _write_checksums(run_dir: Path, sums: dict[str, list[str]]) -> None:
    path = Path(run_dir) / CHECKSUMS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{d}  {name}\n" for name, ds in sorted(sums.items()) for d in ds), encoding="ascii")
    os.replace(tmp, path)


def write_checked(run_dir: Path, name: str, data: bytes | str) -> None:
    """Replace ``<run_dir>/<name>`` atomically and record its digest (see the module's note).

    An ``OSError`` (a full disk) leaves the previous file and a record that still matches it."""
    run_dir = Path(run_dir)
    data = data.encode() if isinstance(data, str) else data
    new = _digest(data)
    sums = read_checksums(run_dir)
    target = run_dir / name
    old = sums.get(name, [])
    if target.exists() and not old:  # first record of a file written before checksums were kept
        old = [_digest(target.read_bytes())]
    tmp = target.with_name(name + ".tmp")
    try:
        with open(tmp, "wb") as f:  # the data first: a full disk fails here, before any record changes
            f.write(data)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _write_checksums(run_dir, {**sums, name: [new, *[d for d in old if d != new]]})
    os.replace(tmp, target)
    _write_checksums(run_dir, {**sums, name: [new]})


def read_checked(run_dir: Path, name: str) -> bytes:
    """The bytes of a run file, refused in one line when they match no recorded digest.
    A run made before checksums were kept (no record of ``name``) is read as it is.

    A reader in another process (``status`` during a run) can see a record and a file from
    two successive rewrites; it reads again, and refuses only what stays the same and wrong."""
    path = Path(run_dir) / name
    seen: tuple[bytes, list[str] | None] | None = None
    for _ in range(20):
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DamagedRunFile(f"{path}: unreadable ({err.strerror or err})") from None
        digests = read_checksums(run_dir).get(name)
        if not digests or _digest(data) in digests:
            return data
        if seen == (data, digests):
            break
        seen = (data, digests)
        time.sleep(0.05)
    raise DamagedRunFile(
        f"{path} does not match the checksum recorded when it was written ({CHECKSUMS_FILE}): it is truncated "
        f"or was edited; restore it from a copy (nothing was written)"
    )


def read_run_info(run_dir: Path) -> RunInfo:
    """``run.json`` as its typed model (``reports.rundir.info.RunInfo``: a run made before a field
    was recorded is read with that field's default there, and nowhere else), else one line."""
    from pydantic import ValidationError

    path = Path(run_dir) / RUN_FILE
    data = read_checked(run_dir, RUN_FILE)
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise DamagedRunFile(f"{path}: not JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DamagedRunFile(f"{path}: a JSON {type(raw).__name__}, not the mapping this tool writes")
    for key, kind in RUN_REQUIRED.items():
        if not isinstance(raw.get(key), kind):
            raise DamagedRunFile(f"{path}: no {key!r} ({kind.__name__}); the file is damaged or not from this tool")
    try:
        info = RunInfo.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        top = first["loc"][0] if first["loc"] else ""
        shown = json.dumps(raw.get(str(top)), default=str)[:60]
        if top == "mode":
            raise DamagedRunFile(
                f"{path}: mode {raw['mode']!r} is neither 'max' nor 'min'; the file was edited"
            ) from None
        raise DamagedRunFile(
            f"{path}: {key!r} holds {shown}, not what this tool writes there ({first['msg']})"
        ) from None
    _check_run_fields(path, info)
    return info


#: What each study kind's report cannot do without.
KIND_FIELDS = {"ablation": ("variants", "reference"), "confirm": ("variants", "reference"), "sensitivity": ("axes",)}


def require_kind_fields(run_dir: Path, info: RunInfo) -> None:
    """What a report of the run's kind cannot do without (``KIND_FIELDS``), else one line."""
    for key in KIND_FIELDS.get(info.kind, ()):
        if getattr(info, key) is None:
            raise DamagedRunFile(
                f"{Path(run_dir) / RUN_FILE}: a {info.kind} run without {key!r}; the file is damaged or was edited"
            )


def _check_run_fields(path: Path, info: RunInfo) -> None:
    """What spans fields: a kind this tool writes, a reference that is one of the variants."""
    from reports.rundir.names import GROUP_COLUMNS

    if info.kind not in GROUP_COLUMNS:
        raise DamagedRunFile(f"{path}: kind {info.kind!r} is no study kind this tool writes; the file was edited")
    if info.reference is not None and info.variants is not None and info.reference not in info.variants:
        raise DamagedRunFile(f"{path}: its reference {info.reference!r} is none of its variants; the file was edited")


def read_results(run_dir: Path, info: RunInfo | None = None):
    """``results.csv`` as a DataFrame (text cells empty, not NaN), refused in one line when it
    is damaged: a digest that matches no record, a row with more or fewer cells than the
    header, a required column missing, a status this tool never writes, or no column for the
    study metric though a trial completed (every completed trial reports it)."""
    import pandas as pd

    path = Path(run_dir) / RESULTS_FILE
    raw = read_checked(run_dir, RESULTS_FILE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedRunFile(f"{path}: not UTF-8 text; the file is damaged") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not rows[0]:
        raise DamagedRunFile(f"{path}: empty; the file is damaged (no header)")
    width = len(rows[0])
    for n, row in enumerate(rows[1:], 2):
        if len(row) != width:
            raise DamagedRunFile(
                f"{path}: line {n} has {len(row)} cells, the header {width}; the file is damaged (truncated?)"
            )
    if text and not text.endswith("\n"):
        raise DamagedRunFile(f"{path}: the last line is cut short (no line end); the file is damaged (truncated?)")
    missing = [c for c in RESULTS_REQUIRED if c not in rows[0]]
    if missing:
        raise DamagedRunFile(
            f"{path}: no {', '.join(map(repr, missing))} column; the file is damaged or not from this tool"
        )
    df = pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""], dtype={"trial_id": str, "error": str})
    for c in ("trial_id", "error"):
        if c in df.columns:
            df[c] = df[c].fillna("")
    odd = sorted(set(df["status"].astype(str)) - set(STATUSES))
    if odd:
        raise DamagedRunFile(
            f"{path}: status {odd[0]!r} is not one this tool writes ({', '.join(STATUSES)}); the file is damaged"
        )
    metric = info.metric if info is not None else None
    if metric and metric not in df.columns and (df["status"] == TERMINATED).any():
        raise DamagedRunFile(
            f"{path}: no column for the study metric {metric!r} though "
            f"{int((df['status'] == 'TERMINATED').sum())} trials completed; the file is damaged"
        )
    if info is not None:
        _check_rows(path, df, info)
        for m in dict.fromkeys([metric, *info.report_metrics]):
            if m in df.columns:  # a metric is a number (NaN spelt 'nan' or empty), never text
                values = pd.to_numeric(df[m], errors="coerce")
                bad = values.isna() & df[m].notna() & (df[m].astype(str).str.lower() != "nan")
                if bad.any():
                    raise DamagedRunFile(
                        f"{path}: {m} of {df['trial_name'][bad.idxmax()]} is {df[m][bad.idxmax()]!r}, not a number; "
                        "the file is damaged"
                    )
                df[m] = values.astype(float)
    for c in OPTIONAL_TEXT:  # a table written by hand or by an older version: empty, never a KeyError later
        if c not in df.columns:
            df[c] = ""
    for c in OPTIONAL_NUMBERS:
        if c not in df.columns:
            df[c] = float("nan")
    return df


#: Columns of results.csv every reader may use, filled (empty) where a table lacks them.
OPTIONAL_TEXT = ("error",)
OPTIONAL_NUMBERS = ("wall_s", "iterations")


def _check_rows(path: Path, df, info: RunInfo) -> None:
    """The table holds the trials run.json says the run has: its group column, and for a grid
    run a row for every variant (or point) and seed, each once (whole rows removed, or copied
    in, with the digest redone or deleted, are caught here)."""
    group = info.group
    if len(df) and group not in df.columns:
        raise DamagedRunFile(f"{path}: no {group!r} column, which a {info.kind} run's table has; the file is damaged")
    dup = df["trial_name"][df["trial_name"].duplicated()]
    if len(dup):
        raise DamagedRunFile(f"{path}: trial {dup.iloc[0]!r} has two rows; the file is damaged or was edited")
    if info.kind == "search" or info.variants is None or info.seeds is None:
        return
    have = set(zip(df[group].astype(str), df["seed"].astype(str)))
    for v in info.variants:
        for s in info.seeds:
            if (str(v), str(s)) not in have:
                raise DamagedRunFile(
                    f"{path}: no row for {v!r} with seed {s}, which run.json lists; rows were removed from the file "
                    "(restore it from a copy)"
                )


def _plain_list(v: Any) -> bool:
    """A list Parquet and Arrow hold as a list column: its items all of one scalar type."""
    return isinstance(v, list) and len({type(x) for x in v}) <= 1 and all(isinstance(x, (str, int, float)) for x in v)


def typed_configs(results, configs: dict[str, dict[str, Any]]):
    """``results`` with every ``config/<key>`` column rebuilt from the trials' validated
    configs (``configs.json``), in pandas' nullable type of the values (``Int64``,
    ``boolean``, ``Float64``, ``string``), instead of the types pandas guesses back from the
    CSV: a LoRA rank stays an integer, a flag a boolean, wherever the run is read. A list
    of one scalar type (LoRA targets) stays a Python list; a mapping (``benchmarks``,
    ``val_data``) or a mixed list is its JSON text (sorted keys), so that the frame writes to
    Parquet and Arrow (an empty mapping is a struct with no field, which neither can hold)."""
    import pandas as pd

    keys = sorted({k for c in configs.values() for k in c})
    out = results.copy()
    for key in keys:
        values = [configs.get(name, {}).get(key) for name in out["trial_name"]]
        if any(isinstance(v, (list, dict)) for v in values):
            if all(v is None or _plain_list(v) for v in values):
                out[f"config/{key}"] = pd.Series(values, index=out.index, dtype=object)
            else:
                text = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
                out[f"config/{key}"] = pd.array(text, dtype="string")
        else:
            out[f"config/{key}"] = pd.array(values)  # pandas' nullable dtype for the values' type
    return out


def read_curves(run_dir: Path, need: tuple[str, ...] = CURVE_COLUMNS):
    """``curves.csv`` (every reported value, long format; appended as results arrive, so not
    checksummed), checked for the columns ``need`` names (the others filled with NaN) and its
    numbers; an empty frame when the run has none yet (no file, or a file cut before its
    header). Anything else is one line."""
    import pandas as pd

    path = Path(run_dir) / CURVES_FILE
    empty = pd.DataFrame({c: pd.Series(dtype=object if c in ("trial_name", "key") else float) for c in CURVE_COLUMNS})
    if not path.is_file() or path.stat().st_size == 0:
        return empty
    try:
        df = pd.read_csv(path, dtype={"trial_name": str, "key": str})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DamagedRunFile(f"{path}: unreadable ({str(err).splitlines()[0]})") from None
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DamagedRunFile(
            f"{path}: not a curves file of this tool (no column {', '.join(missing)}; it has "
            f"{', '.join(map(str, df.columns[:6]))}); move it aside to read the run without curves"
        )
    for c in CURVE_COLUMNS:
        if c not in df.columns:
            df[c] = float("nan")
    for c in ("iteration", "time_total_s", "timestamp", "value"):
        numbers = pd.to_numeric(df[c], errors="coerce")
        bad = numbers.isna() & df[c].notna()
        if bad.any():
            raise DamagedRunFile(f"{path}, row {int(bad.idxmax()) + 2}: {c} {df[c][bad.idxmax()]!r} is not a number")
        df[c] = numbers.astype(float)
    return df[list(CURVE_COLUMNS)]


def read_run(run_dir: Path):
    """(results, run.json) of a run directory, each checked as above; else one line. The
    config columns are typed from ``configs.json`` (``typed_configs``) when the run has one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    if not (run_dir / RESULTS_FILE).is_file() or not (run_dir / RUN_FILE).is_file():
        raise RunDirError(f"{run_dir} is not a run directory ({RESULTS_FILE} and {RUN_FILE} are needed)")
    info = read_run_info(run_dir)
    results = read_results(run_dir, info)
    if (run_dir / CONFIGS_FILE).is_file():
        data = read_checked(run_dir, CONFIGS_FILE)  # refused when it matches no recorded digest
        try:
            configs = json.loads(data)
        except ValueError:
            raise DamagedRunFile(f"{run_dir / CONFIGS_FILE} is not JSON; was it edited by hand?") from None
        if not isinstance(configs, dict) or not all(isinstance(c, dict) for c in configs.values()):
            raise DamagedRunFile(f"{run_dir / CONFIGS_FILE} is not a mapping of trial names to configs")
        missing = sorted(set(configs) - set(results["trial_name"]))
        if missing:
            raise DamagedRunFile(
                f"{run_dir / RESULTS_FILE}: no row for trial {missing[0]!r}, which {CONFIGS_FILE} lists; rows were "
                "removed from the file (restore it from a copy)"
            )
        results = typed_configs(results, configs)
    return results, info


__all__ = [
    "DamagedRunFile",
    "RunDirError",
    "read_checked",
    "read_curves",
    "read_results",
    "read_run",
    "read_run_info",
    "typed_configs",
    "write_checked",
]
