"""The contract every registered trainable keeps, checked over the whole registry (as timm's
tests run over ``list_models()``): a new trainable is covered the moment it registers.

What running a trial must do (one report per epoch, a resumed trial equal to a straight
one) is checked per trainable in its own tests and, for the whole path, in
``tests/orchestrator_tests/test_faults.py``."""

from __future__ import annotations

import inspect
import pickle

import pytest
from pydantic import ValidationError

import trainables
from trainables._registry import trainable_module

NAMES = trainables.list_trainables()


def test_the_registry_holds_every_trainable_package():
    assert NAMES == ["da_lora", "infonce", "pair_contrastive", "probe", "triplet"]


@pytest.mark.parametrize("name", NAMES)
def test_the_module_keeps_the_protocol(name):
    entry = trainables.get_trainable(name)
    module = trainable_module(f"{entry.fn.__module__}.loop")
    params = inspect.signature(module.run).parameters
    assert list(params)[:2] == ["cfg", "report"]
    for key in ("restore_from", "out_dir"):
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY and params[key].default is None, key
    assert list(inspect.signature(module.prepare).parameters) == ["cfg", "out_dir"]


@pytest.mark.parametrize("name", NAMES)
def test_the_entry_pickles_by_reference(name):
    """Ray ships the trainable to every worker: by its module and name, not by value."""
    entry = trainables.get_trainable(name)
    data = pickle.dumps(entry.fn)
    assert len(data) < 200 and f"train_{name}".encode() in data
    assert pickle.loads(data) is entry.fn


def _numeric_field(cls) -> str:
    for field, info in cls.model_fields.items():
        if info.annotation in (int, float):
            return field
    raise AssertionError(f"{cls.__name__} has no numeric field")


@pytest.mark.parametrize("name", NAMES)
def test_the_config_refuses_unknown_keys_and_booleans_for_numbers(name):
    cls = trainables.get_trainable(name).config_cls
    cls()  # the defaults are a valid config
    with pytest.raises(ValidationError, match="no_such_key"):
        cls.model_validate({"no_such_key": 1})
    field = _numeric_field(cls)
    with pytest.raises(ValidationError, match="boolean"):
        cls.model_validate({field: True})
    with pytest.raises(ValidationError):  # frozen
        setattr(cls(), field, 1)


@pytest.mark.parametrize("name", NAMES)
def test_the_declared_keys_are_namespaced_and_final(name):
    entry = trainables.get_trainable(name)
    keys = entry.reported_keys(entry.config_cls())
    assert keys and len(set(keys)) == len(keys)
    assert all(k.split("/", 1)[0] in ("train", "val", "eval") and "/" in k for k in keys), keys
    assert any(k.startswith("eval/") for k in keys)
    assert entry.full_iterations(entry.config_cls()) >= 1
