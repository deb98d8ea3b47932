"""Unit tests for airflow_machine_images.validation.primitives: the error every check raises, safe renderings
of bad values, choices and positive numbers."""

from __future__ import annotations

import copy
import pickle

import pytest

from airflow_machine_images import validation as v
from airflow_machine_images.validation import MachineImageValidationError
from airflow_machine_images.validation.primitives import show_value
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


# --------------------------------------------------------------------------------------------------
# show_value never shows key material (issue 23)
# --------------------------------------------------------------------------------------------------


def key_pieces(text: str, key: str, size: int = 8) -> list[str]:
    """The pieces of ``key`` (``size`` characters or more) that ``text`` shows."""
    return [key[i : i + size] for i in range(len(key) - size + 1) if key[i : i + size] in text]


@pytest.mark.parametrize(
    "value",
    [
        # A malformed text body: shown head and tail, it gave away 36 of a key's 44 characters.
        '{"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rawKey": "%s"}}]',  # noqa: E501
        '{"machineImageEncryptionKey": {"rawKey": "%s", ',
        "{'rsaEncryptedKey': '%s'",
    ],
)
def test_text_naming_key_fields_is_not_shown(value: str) -> None:
    for key in (s.CANARY_RAW_KEY, s.CANARY_RSA_KEY):
        shown = show_value(value % key)
        assert shown == "a str that is not shown (it holds encryption key fields)"


@pytest.mark.parametrize(
    "value",
    [
        s.CANARY_RAW_KEY,
        s.CANARY_SLASH_KEY.rstrip("="),
        s.CANARY_RSA_KEY,
        f"prefix {s.CANARY_RSA_KEY} suffix that is long enough to be cut in the middle by the rendering",
        ["a", "b", s.CANARY_RSA_KEY],
        {"note": s.CANARY_RAW_KEY, "other": 1},
        ("x", {"nested": [s.CANARY_RSA_KEY]}),
    ],
)
def test_key_shaped_text_is_hidden_before_the_rendering_is_cut(value: object) -> None:
    """An RSA-wrapped key in a list was cut into a head and a tail, neither shaped like a key: both shown."""
    shown = show_value(value)
    for key in (s.CANARY_RAW_KEY, s.CANARY_SLASH_KEY, s.CANARY_RSA_KEY):
        assert key_pieces(shown, key) == [], shown
    assert "***" in shown


def test_the_values_of_key_named_fields_are_hidden_whatever_their_shape() -> None:
    assert show_value({"rawKey": "short"}) == "a dict that is not shown (it holds encryption key fields)"
    # A key-named field under an encryption-key field, however deep the rendering goes.
    shown = show_value([{"a": {"b": {"customerKey": "not-base64-at-all"}}}])
    assert "not-base64" not in shown
    assert show_value({"diskKey": "visible-value"}) == "{'diskKey': 'visible-value'} (dict)"  # not under a key


def test_ordinary_values_are_shown_as_before() -> None:
    assert show_value("Web_1") == "'Web_1'"
    assert show_value(3) == "3 (int)"
    assert show_value(["us", "eu"]) == "['us', 'eu'] (list)"
    assert show_value("web-1-nightly-20260101-0000-abcdefghijklmnopqrstu") == (
        "'web-1-nightly-20260101-0000-abcdefghijklmnopqrstu'"
    )
    assert show_value([[[[[1]]]]]) == "[[[[...]]]] (list)"
