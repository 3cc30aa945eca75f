"""Registry of trainables, looked up by name (timm's ``register_model`` pattern)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from pydantic import BaseModel


@dataclass(frozen=True)
class TrainableEntry:
    """A registered trainable.

    Attributes:
        name: the name studies use (``trainable: da_lora``).
        fn: the Ray Tune function trainable, ``fn(config: dict) -> None``.
        config_cls: frozen pydantic model that validates a config dict (unknown keys refused).
        prepare: ``prepare(config, run_dir)`` builds what every trial shares (data, backbone)
            once, in the driver, before trials start; may leave files for the report in
            ``run_dir``; returns provenance such as ``{"data_fingerprint": ...}``.
        description: one line for listings.
        metric_keys: ``metric_keys(config) -> list of str``: every key the trial's final report
            carries, from the config alone (no data, no model); a study's ``metric`` and
            report metrics are checked against it before anything runs.
        iterations: ``iterations(config) -> int``: how many times a trial that runs to its end
            reports (its epochs, or 1 for a trial that evaluates once); a trial that ended
            with fewer reports was stopped early.
        smoke: config overrides of the smallest real trial (tiny data, two epochs where the
            trainable trains by epochs; seconds on a CPU): what the registry's contract test
            runs, straight and resumed, for every trainable.
    """

    name: str
    fn: Callable[[dict[str, Any]], None]
    config_cls: type[BaseModel]
    prepare: Callable[[BaseModel, Path], dict[str, str]]
    description: str
    metric_keys: Callable[[BaseModel], list[str]] | None = None
    iterations: Callable[[BaseModel], int] | None = None
    smoke: Mapping[str, Any] = field(default_factory=dict)
    #: Whether its trials keep the best epoch's model (``register_module``'s trainables do):
    #: the study then hands each trial's config ``BEST_EPOCH_KEY``.
    keeps_best: bool = False
    #: Which way each reported metric is better (``trainables.metrics``): (pattern, direction).
    directions: tuple[tuple[str, str], ...] = ()
    #: What a report calls each reported metric (``trainables.metrics.display_name``): (pattern, name).
    names: tuple[tuple[str, str], ...] = ()

    def direction(self, key: str) -> str | None:
        """``max`` or ``min``: which way ``key`` is better, as the trainable declared it."""
        from trainables.metrics import direction

        return direction(self.directions, key)

    def display_name(self, key: str) -> str | None:
        """What tables and figures call ``key``, as the trainable declared it."""
        from trainables.metrics import display_name

        return display_name(self.names, key)

    def reported_keys(self, config: dict[str, Any] | BaseModel) -> list[str]:
        """``metric_keys`` of a config (dict or validated object)."""
        cfg = config if isinstance(config, BaseModel) else self.config_cls.model_validate(config)
        return list(self.metric_keys(cfg)) if self.metric_keys is not None else []

    def full_iterations(self, config: dict[str, Any] | BaseModel) -> int:
        """Reports of a trial that runs to its end (``iterations``; default: its ``epochs``)."""
        cfg = config if isinstance(config, BaseModel) else self.config_cls.model_validate(config)
        if self.iterations is not None:
            return int(self.iterations(cfg))
        return int(getattr(cfg, "epochs", 1))


_REGISTRY: dict[str, TrainableEntry] = {}

#: The key of a trial's config that names the validation metric its best epoch is chosen by
#: (``"val/x/acc:max"``, "" for none: the last epoch); taken out before the config is validated.
BEST_EPOCH_KEY = "_best_epoch_by"
#: The key of a trial's config that names the study's data snapshot (``trainables.data.snapshot``:
#: what its preparation found, which the trial reads instead of listing its data again); its
#: ``prepare`` returns it as the provenance ``DATA_SNAPSHOT``; taken out before validation.
DATA_SNAPSHOT_KEY, DATA_SNAPSHOT = "_data_snapshot", "data_snapshot"


def register_trainable(
    name: str,
    *,
    config_cls: type[BaseModel],
    prepare: Callable[[BaseModel, Path], dict[str, str]],
    description: str,
    metric_keys: Callable[[BaseModel], list[str]] | None = None,
    iterations: Callable[[BaseModel], int] | None = None,
    smoke: Mapping[str, Any] | None = None,
    keeps_best: bool = False,
    directions: Sequence[tuple[str, str]] = (),
    names: Sequence[tuple[str, str]] = (),
) -> Callable[[Callable], Callable]:
    config_cls.model_validate(dict(smoke or {}))  # a smoke config that does not validate fails at import

    def wrap(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        if name in _REGISTRY:
            raise ValueError(f"trainable {name!r} is registered twice")
        _REGISTRY[name] = TrainableEntry(
            name,
            fn,
            config_cls,
            prepare,
            description,
            metric_keys,
            iterations,
            dict(smoke or {}),
            keeps_best,
            tuple((str(p), str(d)) for p, d in directions),
            tuple((str(p), str(n)) for p, n in names),
        )
        return fn

    return wrap


def trainable_module(module: str):
    """The Ray-free module of a trainable, checked against ``trainables.protocol.TrainableModule``."""
    from trainables.protocol import TrainableModule

    mod = importlib.import_module(module)
    if not isinstance(mod, TrainableModule):
        raise TypeError(
            f"{module} is not a trainable module: it needs prepare(cfg, out_dir) and "
            "run(cfg, report, *, restore_from=None, out_dir=None) (trainables/protocol.py)"
        )
    return mod


def register_module(
    name: str,
    *,
    config_cls: type[BaseModel],
    module: str,
    description: str,
    metric_keys: Callable[[BaseModel], list[str]] | None = None,
    iterations: Callable[[BaseModel], int] | None = None,
    smoke: Mapping[str, Any] | None = None,
    directions: Sequence[tuple[str, str]] = (),
    names: Sequence[tuple[str, str]] = (),
) -> Callable[[dict[str, Any]], None]:
    """Register the trainable whose preparation and training live in ``module``, a Ray-free
    module with ``prepare(cfg, out_dir)`` and ``run(cfg, report, *, restore_from)``.

    The module (torch, peft, timm...) is imported only when a run prepares or a trial
    starts, so that listing, validating and unpickling a trainable stay fast: a Ray worker
    pays for the imports once, when its first trial starts. Returns the Tune trainable.
    """

    def prepare(cfg: BaseModel, out_dir: Path) -> dict[str, str]:
        from trainables.data import snapshot

        with snapshot.recording() as pins:
            provenance = trainable_module(module).prepare(cfg, out_dir)
        name = snapshot.save(pins)
        return {**provenance, DATA_SNAPSHOT: name} if name else provenance

    def train(config: dict[str, Any]) -> None:
        from trainables.data import snapshot
        from trainables.ray_glue import run_in_tune

        config = dict(config)
        best_by = config.pop(BEST_EPOCH_KEY, None)
        with snapshot.pinned(config.pop(DATA_SNAPSHOT_KEY, None)):
            run_in_tune(trainable_module(module).run, config_cls.model_validate(config), best_by)

    # the package assigns the result to ``train_<name>``: pickles (Ray's) then refer to it by
    # name, as to any module-level function, instead of carrying the closure by value
    train.__name__ = train.__qualname__ = f"train_{name}"
    train.__module__ = module.rsplit(".", 1)[0]
    return register_trainable(
        name,
        config_cls=config_cls,
        prepare=prepare,
        description=description,
        metric_keys=metric_keys,
        iterations=iterations,
        smoke=smoke,
        keeps_best=True,
        directions=directions,
        names=names,
    )(train)


def discover(package: str, path: list[str]) -> list[str]:
    """Import every trainable package under ``package`` (each registers itself): a trainable
    is a sub-package with a ``loop.py``, its Ray-free module; shared code (``data``,
    ``models``...) has none. Adding a trainable is adding its package: nothing to list here."""
    import pkgutil

    found = sorted(
        info.name
        for info in pkgutil.iter_modules(path)
        if info.ispkg and (Path(info.module_finder.path) / info.name / "loop.py").is_file()  # type: ignore[union-attr]
    )
    for name in found:
        importlib.import_module(f"{package}.{name}")
    return found


def get_trainable(name: str) -> TrainableEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown trainable {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def list_trainables() -> list[str]:
    return sorted(_REGISTRY)
