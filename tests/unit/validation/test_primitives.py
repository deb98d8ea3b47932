"""Unit tests for airflow_machine_images.validation.primitives: the error every check raises, safe renderings
of bad values, choices and positive numbers."""

from __future__ import annotations

import copy
import pickle

import pytest

from airflow_machine_images import validation as v
from airflow_machine_images.validation import MachineImageValidationError
from tests import strategies as s
from tests.unit.validation.support import (
    raises,
)

# --------------------------------------------------------------------------------------------------
# The error type
# --------------------------------------------------------------------------------------------------


def test_error_message_format_names_parameter_rule_and_value() -> None:
    with pytest.raises(MachineImageValidationError) as info:
        v.validate_machine_image_name("Web_1")
    assert str(info.value) == (
        "Invalid name: must match [a-z](?:[-a-z0-9]{0,61}[a-z0-9])? (1-63 characters: lowercase letters, "
        "digits and hyphens, starting with a letter and not ending with a hyphen); got 'Web_1'."
    )
    assert isinstance(info.value, ValueError)
    assert info.value.parameter == "name"
    assert info.value.rule.startswith("must match [a-z]")


def test_error_survives_pickle_and_copy() -> None:
    error = MachineImageValidationError("labels['Team']", "label keys must match x", "'Team'")
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert isinstance(clone, MachineImageValidationError)
        assert (clone.parameter, clone.rule, str(clone)) == (error.parameter, error.rule, str(error))


def test_unprintable_value_still_gives_a_message() -> None:
    with raises("name", "must be a string"):
        v.validate_machine_image_name(s._BadRepr())


# --------------------------------------------------------------------------------------------------
# Choices and numbers
# --------------------------------------------------------------------------------------------------


def test_choice() -> None:
    assert v.validate_choice("reuse", "if_exists", ("reuse", "fail")) == "reuse"
    for bad in ("overwrite", "", "REUSE", None, ["reuse"], {"reuse": 1}, 1):
        with raises("if_exists", "must be one of 'reuse', 'fail'"):
            v.validate_choice(bad, "if_exists", ("reuse", "fail"))
    with raises("mode", "must be one of 'a', 'b'"):
        v.validate_choice([], "mode", {"b", "a"})


def test_positive_number() -> None:
    assert v.validate_positive_number(5, "timeout") == 5.0
    assert v.validate_positive_number(0.5, "timeout") == 0.5
    with pytest.raises(MachineImageValidationError) as info:
        v.validate_positive_number(None, "timeout")
    assert str(info.value) == "Invalid timeout: must be a positive, finite number; got None (NoneType)."
    for bad in (0, -1, -0.0, float("nan"), float("inf"), float("-inf"), True, False, "5", None, [1], 10**400):
        with raises("timeout", "positive, finite number"):
            v.validate_positive_number(bad, "timeout")
