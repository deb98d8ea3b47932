"""Bad-input campaign: generated arguments through the insert operator, against a live emulator.

Invalid input must fail in the operator's validation with ``MachineImageValidationError`` (wrapped
in ``AirflowFailException``, so Airflow does not retry it), naming the parameter, and before any
HTTP request: the emulator's request log must stay empty. Input that is valid per the discovery
document's patterns must never be rejected: the insert must reach the server, carrying the
normalised name and source instance.

Examples per strategy: 100 (``HYPOTHESIS_PROFILE=ci``) or 1,000 (``long``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.exceptions import ComputeEngineError
from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator
from airflow_machine_images.validation import InstanceRef, MachineImageValidationError
from airflow_machine_images.validation.templates import is_literal
from tests import strategies
from tests.reliability.conftest import PROJECT, SOURCE, connection_json
from tests.reliability.harness import FakeTaskInstance, context_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_machine_images.emulator import RecordedRequest

pytestmark = pytest.mark.reliability

GOOD: dict[str, Any] = {"name": "img-ok", "source_instance": SOURCE}


@pytest.fixture(scope="module")
def server() -> Iterator[ComputeEngineEmulator]:
    """One emulator for every example (operations never finish: nothing is waited for)."""
    with (
        ComputeEngineEmulator(default_project=PROJECT, operation_seconds=3600, seed=9) as emu,
        pytest.MonkeyPatch.context() as patch,
    ):
        emu.add_instance(SOURCE)
        patch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        yield emu


def parsed(**arguments: Any) -> MachineImageValidationError | None:
    """Build the operator as a DAG file that writes ``arguments`` literally does: the parse-time error, if any."""
    try:
        ComputeEngineInsertMachineImageOperator(task_id="create", wait_for_completion=False, **{**GOOD, **arguments})
    except MachineImageValidationError as error:
        return error
    return None


def execute(**arguments: Any) -> Any:
    """Run the operator with ``arguments`` as rendered templates set them (after parsing)."""
    operator = ComputeEngineInsertMachineImageOperator(task_id="create", wait_for_completion=False, **GOOD)
    for key, value in arguments.items():
        setattr(operator, key, value)
    ti = FakeTaskInstance("bad_input", "create", "manual__1", -1, 1)
    return operator.execute(context_of(ti))


def rejected(server: ComputeEngineEmulator, parameter: str, **arguments: Any) -> MachineImageValidationError:
    """Written literally, the operator refuses ``arguments`` at parse time (unless they are no literal, such
    as bytes or a template); rendered, it fails validation naming ``parameter``, having sent nothing."""
    at_parse = parsed(**arguments)
    if at_parse is not None:
        assert at_parse.parameter.startswith(parameter), (at_parse.parameter, parameter)
    else:
        assert not is_literal(next(iter(arguments.values()))), f"a literal {arguments} passed parsing"
    server.clear_requests()
    with pytest.raises(AirflowFailException) as info:
        execute(**arguments)
    cause = info.value.__cause__
    assert isinstance(cause, MachineImageValidationError), f"{type(cause).__name__}: {cause}"
    assert cause.parameter.startswith(parameter), (cause.parameter, parameter)
    assert parameter in str(info.value)
    assert server.requests == [], "an HTTP request was sent for invalid input"
    return cause


def accepted(server: ComputeEngineEmulator, **arguments: Any) -> RecordedRequest:
    """Parsing and validation must pass and the insert must reach the server. Return it."""
    assert parsed(**arguments) is None, f"valid input refused at parse time: {parsed(**arguments)}"
    server.clear_requests()
    try:
        execute(**arguments)
    except ComputeEngineError:
        pass  # the server's answer (e.g. 404 for an instance it does not have) is not ours to judge here
    except AirflowFailException as exc:
        raise AssertionError(f"valid input rejected: {exc}") from exc
    inserts = [r for r in server.requests if r.action == "machineImages.insert"]
    assert len(inserts) == 1, [r.action for r in server.requests]
    return inserts[0]


# -------------------------------------------------------------------------------------------- names


@given(name=strategies.invalid_names())
def test_invalid_names_are_rejected_before_any_request(server: ComputeEngineEmulator, name: Any) -> None:
    rejected(server, "name", name=name)


@given(name=strategies.valid_names())
def test_valid_names_are_sent(server: ComputeEngineEmulator, name: str) -> None:
    sent = accepted(server, name=name).body
    assert sent is not None and sent["name"] == name


# ---------------------------------------------------------------------------------------- projects


def _set(value: Any) -> bool:
    """A falsy project_id means "the connection's project", as for every Google operator."""
    return value is not NotImplemented and bool(value)


@given(project=strategies.invalid_project_ids().filter(_set))
def test_invalid_project_ids_are_rejected_before_any_request(server: ComputeEngineEmulator, project: Any) -> None:
    rejected(server, "project_id", project_id=project)


@given(project=strategies.valid_project_ids())
def test_valid_project_ids_are_sent(server: ComputeEngineEmulator, project: str) -> None:
    from urllib.parse import quote

    request = accepted(server, project_id=project)
    assert request.path == f"/compute/beta/projects/{quote(project, safe='')}/global/machineImages"


# ------------------------------------------------------------------------------------- request ids


@given(request_id=strategies.invalid_request_ids().filter(lambda value: value is not None))
def test_invalid_request_ids_are_rejected_before_any_request(server: ComputeEngineEmulator, request_id: Any) -> None:
    rejected(server, "request_id", request_id=request_id)


@given(request_id=strategies.valid_request_ids())
def test_valid_request_ids_are_sent_in_canonical_form(server: ComputeEngineEmulator, request_id: str) -> None:
    assert accepted(server, request_id=request_id).query["requestId"] == request_id.lower()


# ------------------------------------------------------------------------------------------ labels


@given(labels=strategies.invalid_labels().filter(lambda value: value is not None))
def test_invalid_labels_are_rejected_before_any_request(server: ComputeEngineEmulator, labels: Any) -> None:
    rejected(server, "labels", labels=labels)


@given(labels=strategies.any_valid_labels(), in_body=st.booleans())
def test_valid_labels_are_sent(server: ComputeEngineEmulator, labels: dict[str, str], in_body: bool) -> None:
    sent = accepted(server, **({"body": {"labels": labels}} if in_body else {"labels": labels})).body
    assert sent is not None
    assert labels.items() <= (sent.get("labels") or {}).items()


# -------------------------------------------------------------------------------- source instances


@given(source=st.one_of(strategies.invalid_source_instances(), strategies.non_strings()))
def test_invalid_source_instances_are_rejected_before_any_request(server: ComputeEngineEmulator, source: Any) -> None:
    rejected(server, "source_instance", source_instance=source)


@given(case=strategies.valid_source_instances())
def test_valid_source_instances_are_sent_in_partial_form(
    server: ComputeEngineEmulator, case: tuple[str, str, InstanceRef]
) -> None:
    text, default_project, expected = case
    request = accepted(server, source_instance=text, project_id=default_project)
    assert request.query["sourceInstance"] == expected.partial_url


# ------------------------------------------------------------------------------------------ bodies


@given(case=strategies.invalid_bodies())
def test_invalid_bodies_are_rejected_before_any_request(server: ComputeEngineEmulator, case: tuple[Any, str]) -> None:
    body, path = case
    rejected(server, path, body=body)


@given(body=strategies.valid_bodies())
def test_valid_bodies_are_sent(server: ComputeEngineEmulator, body: dict[str, Any]) -> None:
    sent = accepted(server, body=body).body
    assert sent is not None
    assert {k for k in body if k != "labels"} <= sent.keys()
