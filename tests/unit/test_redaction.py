"""Redaction: keys and tokens in every form a JSON or URL layer writes them, in every place text ends up."""

from __future__ import annotations

import base64
import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_machine_images.api.calls import ComputeApi
from airflow_machine_images.api.redaction import (
    MASK,
    redact_event,
    redact_key_material,
    scrub_text,
)
from airflow_machine_images.api.responses import parse_response
from airflow_machine_images.exceptions import ComputeEngineApiError, OperationFailedError
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.machine_image import MachineImageTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity
from airflow_machine_images.validation import parse_source_instance
from tests.strategies import (
    CANARY_RAW_KEY,
    CANARY_RSA_KEY,
    CANARY_SLASH_KEY,
    leaked,
    secret_encodings,
)

#: An RSA-2048-wrapped key is 256 bytes.
RSA_2048_KEY = base64.b64encode(bytes(range(256))[::-1]).decode()
KEYS = {"raw key": CANARY_RAW_KEY, "raw key with + and /": CANARY_SLASH_KEY, "RSA-wrapped": CANARY_RSA_KEY}
ALL_KEYS = {**KEYS, "RSA-2048-wrapped": RSA_2048_KEY}
TOKEN = "ya29.a0AfB_byC-REDACTION-canary-token_0123456789"
API = ComputeApi("https://compute.googleapis.com", "beta")
SOURCE = "projects/p/zones/us-central1-a/instances/web-1"


def forms() -> list[tuple[str, str, str]]:
    return [(what, name, form) for what, key in ALL_KEYS.items() for name, form in secret_encodings(key).items()]


def gson(payload: Any) -> bytes:
    """JSON as Gson writes it by default: '=' (and <, >, &, ') escaped as \\u00XX, '/' left alone."""
    text = json.dumps(payload)
    for char in "=<>&'":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


@pytest.mark.parametrize(("what", "encoding", "form"), forms())
def test_known_secrets_are_scrubbed_in_every_form(what: str, encoding: str, form: str) -> None:
    key = ALL_KEYS[what]
    text = scrub_text(f"Invalid value '{form}' for field", [key])
    assert not leaked(text, key), text
    assert MASK in text


@pytest.mark.parametrize(
    ("what", "encoding", "form"),
    [case for case in forms() if not case[1].startswith("form-decoded")],  # a space splits a key in two
)
def test_anything_shaped_like_key_material_is_redacted_in_every_form(what: str, encoding: str, form: str) -> None:
    """For text whose author never saw the key (the triggerer)."""
    key = ALL_KEYS[what]
    for text in (f"Invalid key {form}.", f'{{"rawKey":"{form}"}}', f"rawKey={form}&x=1", form):
        redacted = redact_key_material(text)
        assert not leaked(redacted, key), redacted


@given(st.binary(min_size=32, max_size=32) | st.binary(min_size=256, max_size=600))
def test_every_raw_or_rsa_wrapped_key_is_recognised(raw: bytes) -> None:
    key = base64.b64encode(raw).decode()
    for form in secret_encodings(key).values():
        if " " not in form:
            assert not leaked(redact_key_material(f"error: {form}"), key)


@pytest.mark.parametrize(
    "text",
    [
        "Operation operation-1795839054991-b647e63bfe90d-1d8b986d-32030198 failed",
        "The resource 'projects/demo-project/global/machineImages/web-1-20261128-041051' already exists",
        "https://www.googleapis.com/compute/beta/projects/demo-project/zones/us-central1-a/instances/web-1",
        "Quota 'MACHINE_IMAGES' exceeded. Limit: 100.0 globally.",
        "requestId 51ca8d43-b8b3-5e12-91df-9afa8dd0b37a, labelFingerprint 42WmSpB8rSM=",
        "Required 'compute.machineImages.create' permission for 'projects/p/global/machineImages/x'",
        "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED: too many operations in flight",
    ],
)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact_key_material(text) == text


def test_error_bodies_are_scrubbed_after_json_decoding() -> None:
    """A server that escapes '=' as \\u003d (Gson's default) defeated the byte-level scrub.

    The escaped body does not contain the key's bytes, but its decoded message does: the exception
    text carried the exact key.
    """
    body = {"machineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}}
    call = API.insert_machine_image("p", body, source_instance=SOURCE, request_id="x")
    for name, form in secret_encodings(CANARY_SLASH_KEY).items():
        echo = f"Invalid value for field 'resource': {form} (Authorization: Bearer {TOKEN})"
        raw = gson({"error": {"code": 400, "message": echo, "errors": [{"reason": "invalid", "message": echo}]}})
        with pytest.raises(ComputeEngineApiError) as info:
            parse_response(call, 400, raw, {}, secrets=[TOKEN])
        text = f"{info.value} {info.value!r} {vars(info.value)!r}"
        assert not leaked(text, CANARY_SLASH_KEY), (name, text)
        assert TOKEN not in text
        assert "HTTP 400 invalid" in str(info.value)


def test_non_json_error_bodies_are_scrubbed_in_every_form() -> None:
    body = {"machineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}}
    call = API.insert_machine_image("p", body, source_instance=SOURCE, request_id="x")
    page = " ".join(secret_encodings(CANARY_SLASH_KEY).values())
    for status in (200, 502):
        with pytest.raises(ComputeEngineApiError) as info:
            parse_response(call, status, f"<html>bad gateway: {page}</html>".encode(), {})
        assert not leaked(str(info.value), CANARY_SLASH_KEY), str(info.value)


def test_operation_errors_are_redacted() -> None:
    """Operation error messages and httpErrorMessage were quoted verbatim into the exception."""
    encodings = secret_encodings(CANARY_SLASH_KEY)
    shaped = " ".join(form for name, form in encodings.items() if not name.startswith("form-decoded"))
    error = OperationFailedError(
        "operation-1",
        [{"code": "INVALID_KEY", "message": f"The key {shaped} is not valid"}],
        http_error_status_code=400,
        http_error_message=f"BAD REQUEST {CANARY_RSA_KEY}",
    )
    text = f"{error} {error!r} {vars(error)!r}"
    assert not leaked(text, CANARY_RSA_KEY) and not leaked(text, CANARY_SLASH_KEY), text
    assert "INVALID_KEY" in str(error) and "HTTP 400" in str(error)
    # Where the caller knows the key (the insert flow), every form goes, a space for '+' included.
    every = " ".join(encodings.values())
    error = OperationFailedError("operation-1", [{"code": "X", "message": every}], secrets=[CANARY_SLASH_KEY])
    assert not leaked(f"{error} {vars(error)!r}", CANARY_SLASH_KEY)


def test_trigger_events_are_redacted_in_the_fields_a_server_writes() -> None:
    event = {
        "status": "error",
        "message": f"Operation operation-1 failed: INVALID_KEY: bad key {CANARY_RAW_KEY}",
        "errors": [{"code": "INVALID_KEY", "message": f"bad key {secret_encodings(CANARY_SLASH_KEY)['URL-safe']}"}],
        "operation": {"name": "operation-1", "httpErrorMessage": f"key {CANARY_RSA_KEY}", "httpErrorStatusCode": 400},
        "operation_name": "operation-1",
    }
    redacted = redact_event(event)
    assert not any(leaked(json.dumps(redacted), key) for key in KEYS.values())
    assert redacted["operation"]["httpErrorStatusCode"] == 400 and redacted["operation_name"] == "operation-1"
    assert event["message"].endswith(CANARY_RAW_KEY)  # the input is not changed


def test_the_reprs_of_request_objects_show_no_key() -> None:
    body = {"name": "img", "machineImageEncryptionKey": {"rawKey": CANARY_RAW_KEY}}
    call = API.insert_machine_image("p", body, source_instance=SOURCE, request_id="x")
    identity = TaskInstanceIdentity(dag_id="d", task_id="t", run_id="r", map_index=-1)
    request = CreateRequest(
        target=MachineImageTarget(parse_source_instance(SOURCE, default_project="p")),
        project_id="p",
        name="img",
        body=body,
        request_ids=RequestIds(identity, "p", "img", "insert"),
        owner_key="k",
    )
    from airflow_machine_images.emulator.api import route
    from airflow_machine_images.emulator.routing import Call

    emulator_call = Call(route("POST", "/compute/beta/projects/p/global/machineImages"), {}, body)
    for thing in (call, request, emulator_call):
        assert CANARY_RAW_KEY not in repr(thing), type(thing).__name__


@pytest.mark.parametrize(
    "rendered",
    [
        json.dumps({"rawKey": CANARY_SLASH_KEY}),  # a Variable holding JSON text: {{ var.value.csek }}
        json.dumps({"rawKey": CANARY_SLASH_KEY}).replace("/", "\\/"),  # ... written by an escaping encoder
        str({"rawKey": CANARY_SLASH_KEY}),  # {{ var.json.csek }} without native rendering: a dict's repr
    ],
)
def test_a_key_argument_rendered_to_text_is_parsed_and_masked(rendered: str) -> None:
    """A key field that rendered to a string was neither masked nor usable."""
    from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

    operator = ComputeEngineInsertMachineImageOperator(
        task_id="create",
        name="img",
        source_instance="us-central1-a/web-1",
        project_id="p",
        machine_image_encryption_key=rendered,  # type: ignore[arg-type]
        source_disk_encryption_keys=json.dumps(  # type: ignore[arg-type]
            [{"sourceDisk": "zones/us-central1-a/disks/d", "diskEncryptionKey": {"rsaEncryptedKey": CANARY_RSA_KEY}}]
        ),
    )
    with mock.patch("airflow_machine_images.operators.base.mask_secret") as masked:
        operator.mask_key_material()
    registered = {call.args[0] for call in masked.call_args_list}
    assert {CANARY_SLASH_KEY, CANARY_RSA_KEY} <= registered
    as_stored = rendered  # what the secrets masker makes of the rendered field
    for secret in sorted(registered, key=len, reverse=True):
        as_stored = as_stored.replace(secret, "***")
    assert not leaked(as_stored, CANARY_SLASH_KEY), as_stored
    ti = mock.Mock(dag_id="d", task_id="create", run_id="r", map_index=-1)
    request = operator.prepare_request({"ti": ti})  # type: ignore[arg-type]
    assert request.body["machineImageEncryptionKey"] == {"rawKey": CANARY_SLASH_KEY}
    assert request.body["sourceDiskEncryptionKeys"][0]["diskEncryptionKey"] == {"rsaEncryptedKey": CANARY_RSA_KEY}


def test_the_restore_operator_masks_a_literal_key_in_its_body_like_the_insert_operator() -> None:
    """The restore operator never got the insert operator's key masking: a key in its body reached the UI."""
    from airflow_machine_images.operators import ComputeEngineRestoreMachineImageOperator

    operator = ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name="drill-1",
        zone="us-central1-a",
        source_machine_image="img-1",
        project_id="p",
        body={"sourceMachineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}},
    )
    with mock.patch("airflow_machine_images.operators.base.mask_secret") as masked:
        operator.mask_key_material()
    assert CANARY_SLASH_KEY in {call.args[0] for call in masked.call_args_list}


@pytest.mark.parametrize(
    "rendered",
    [
        json.dumps({"sourceMachineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}}).replace("/", "\\/"),
        str({"sourceMachineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}}),
    ],
)
def test_the_restore_operator_reads_and_masks_a_body_that_rendered_to_text(rendered: str) -> None:
    """A Variable's text as the restore operator's body was stored whole (unmasked) and then refused."""
    from airflow_machine_images.operators import ComputeEngineRestoreMachineImageOperator

    operator = ComputeEngineRestoreMachineImageOperator(
        task_id="restore", name="drill-1", zone="us-central1-a", source_machine_image="img-1", project_id="p"
    )
    operator.body = rendered  # type: ignore[assignment]  # as rendering leaves it
    with mock.patch("airflow_machine_images.operators.base.mask_secret") as masked:
        operator.mask_key_material()
    assert CANARY_SLASH_KEY in {call.args[0] for call in masked.call_args_list}
    assert operator.body == {"sourceMachineImageEncryptionKey": {"rawKey": CANARY_SLASH_KEY}}  # stored parsed
    ti = mock.Mock(dag_id="d", task_id="restore", run_id="r", map_index=-1)
    request = operator.prepare_request({"ti": ti})  # type: ignore[arg-type]
    assert request.body["sourceMachineImageEncryptionKey"] == {"rawKey": CANARY_SLASH_KEY}


def test_a_text_body_that_cannot_be_read_is_masked_by_shape_and_never_shown() -> None:
    from airflow_machine_images.compat import AirflowFailException
    from airflow_machine_images.operators import ComputeEngineInsertMachineImageOperator

    text = '{"sourceDiskEncryptionKeys": [{"sourceDisk": "zones/z/disks/d", "diskEncryptionKey": {"rawKey": "%s"}}]'
    operator = ComputeEngineInsertMachineImageOperator(
        task_id="create", name="img", source_instance="us-central1-a/web-1", project_id="p"
    )
    operator.body = text % CANARY_RAW_KEY  # type: ignore[assignment]
    with mock.patch("airflow_machine_images.operators.base.mask_secret") as masked:
        operator.mask_key_material()
    assert CANARY_RAW_KEY in {call.args[0] for call in masked.call_args_list}
    assert operator.body == text % CANARY_RAW_KEY  # not readable: left as it is
    ti = mock.Mock(dag_id="d", task_id="create", run_id="r", map_index=-1, try_number=1)
    with pytest.raises(AirflowFailException) as info:
        operator.execute({"ti": ti})  # type: ignore[arg-type]
    assert "Invalid body" in str(info.value)
    assert not any(CANARY_RAW_KEY[i : i + 8] in str(info.value) for i in range(len(CANARY_RAW_KEY) - 8))
