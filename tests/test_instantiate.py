import pytest
from omegaconf import OmegaConf

from seglab.utils.instantiate import instantiate_named


def test_named_entries_are_instantiated_and_nulls_skipped():
    cfg = OmegaConf.create({"a": {"_target_": "collections.Counter", "x": 1}, "b": None})
    objects = instantiate_named(cfg, "callbacks")
    assert len(objects) == 1 and objects[0]["x"] == 1


def test_entry_without_target_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"callbacks\.broken must be a mapping with a _target_"):
        instantiate_named(OmegaConf.create({"broken": {"x": 1}}), "callbacks")


def test_empty_group_gives_no_objects():
    assert instantiate_named(None, "logger") == []
    assert instantiate_named(OmegaConf.create({}), "logger") == []
