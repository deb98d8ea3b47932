"""The synchronous hook against the emulator, over real HTTP (no patching of our HTTP layer)."""

from __future__ import annotations

import time
import uuid

import pytest

from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    InsecureEndpointError,
    OperationFailedError,
    PreconditionFailedError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    TransientApiError,
)
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, connection_json

pytestmark = pytest.mark.integration

SOURCE_URL = f"projects/{PROJECT}/zones/us-central1-a/instances/web-1"
FAST_RETRIES = RetryPolicy(max_attempts=5, initial_backoff=0.05, max_backoff=0.2)


@pytest.fixture
def hook(gcp_connection: ComputeEngineEmulator) -> ComputeEngineMachineImageHook:
    return ComputeEngineMachineImageHook(retry_policy=FAST_RETRIES, read_timeout=2.0)


def insert(hook: ComputeEngineMachineImageHook, name: str = "img-1", request_id: str | None = None) -> dict:
    return hook.insert_machine_image(
        body={"name": name}, source_instance=SOURCE_URL, request_id=request_id or str(uuid.uuid4())
    )


def test_insert_wait_get_list_delete(hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator) -> None:
    operation = insert(hook)
    assert operation["status"] in ("PENDING", "RUNNING")
    done = hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    assert done["status"] == "DONE"
    image = hook.get_machine_image(name="img-1")
    assert image["status"] == "READY"
    assert int(image["totalStorageBytes"]) > 0
    assert [i["name"] for i in hook.list_machine_images(filter_='name = "img-1"')] == ["img-1"]
    deletion = hook.delete_machine_image(name="img-1", request_id=str(uuid.uuid4()))
    hook.wait_for_operation(operation_name=deletion["name"], timeout=30)
    with pytest.raises(ResourceNotFoundError):
        hook.get_machine_image(name="img-1")
    assert emulator.machine_images(PROJECT) == []


def test_wait_uses_long_polls_not_a_busy_loop(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    operation = insert(hook)
    emulator.clear_requests()
    hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    assert emulator.count("globalOperations.wait") == 1
    assert emulator.count("globalOperations.get") == 0


def test_early_wait_answers_back_off_instead_of_spinning(monkeypatch: pytest.MonkeyPatch) -> None:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=2.5, early_wait_probability=1.0) as emu:
        emu.add_instance("us-central1-a/web-1")
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json(emu.url))
        hook = ComputeEngineMachineImageHook(retry_policy=FAST_RETRIES)
        operation = insert(hook)
        hook.wait_for_operation(operation_name=operation["name"], timeout=30, max_early_backoff=1.0)
        # every wait returns at once; with a 1 s pause between them, 2.5 s need ~3-4 waits, not hundreds
        assert 2 <= emu.count("globalOperations.wait") <= 6


def test_same_request_id_is_deduplicated(hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator) -> None:
    request_id = str(uuid.uuid4())
    first = insert(hook, request_id=request_id)
    second = insert(hook, request_id=request_id)
    assert second["name"] == first["name"]
    assert len(emulator.machine_images(PROJECT)) == 1


def test_lost_insert_response_is_retried_and_leaves_one_image(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    emulator.inject(Fault(kind="accept_then_drop", action="machineImages.insert"))
    operation = insert(hook)
    hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    inserts = [r for r in emulator.requests if r.action == "machineImages.insert"]
    assert len(inserts) == 2
    assert inserts[0].status is None  # the first response was lost
    assert inserts[0].query["requestId"] == inserts[1].query["requestId"]
    assert [i["name"] for i in emulator.machine_images(PROJECT)] == ["img-1"]


def test_transient_statuses_are_retried_honouring_retry_after(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    emulator.inject(Fault(kind="status", status=503, action="machineImages.insert", times=2))
    emulator.inject(Fault(kind="status", status=429, action="machineImages.insert", retry_after_seconds=1))
    started = time.monotonic()
    insert(hook)
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert emulator.count("machineImages.insert") == 4
    assert len(emulator.machine_images(PROJECT)) == 1


def test_slow_response_times_out_and_retry_is_deduplicated(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    emulator.inject(Fault(kind="slow", action="machineImages.insert", delay_seconds=3.0))
    operation = insert(hook)
    hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    assert len(emulator.machine_images(PROJECT)) == 1


def test_retries_give_up_with_a_clear_error(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    emulator.inject(Fault(kind="status", status=503, action="machineImages.get", times=None))
    with pytest.raises(TransientApiError, match=r"HTTP 503.*gave up after 5 attempts"):
        hook.get_machine_image(name="img-1")
    assert emulator.count("machineImages.get") == 5


def test_typed_errors(hook: ComputeEngineMachineImageHook) -> None:
    insert(hook)
    with pytest.raises(ResourceAlreadyExistsError) as exists:
        insert(hook)
    assert exists.value.http_status == 409
    assert exists.value.reason == "alreadyExists"
    with pytest.raises(ResourceNotFoundError):
        hook.insert_machine_image(
            body={"name": "img-2"},
            source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/missing",
            request_id=str(uuid.uuid4()),
        )
    with pytest.raises(ResourceNotFoundError):
        hook.get_operation(operation_name="operation-does-not-exist")


def test_already_exists_is_raised_at_once_not_retried(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    # A 409 is an answer, not a fault: retrying it cannot succeed and only spends quota and time.
    emulator.add_machine_image("img-1", source_instance="us-central1-a/web-1")
    with pytest.raises(ComputeEngineApiError) as info:
        insert(hook)
    sent = [r.status for r in emulator.requests if r.action == "machineImages.insert"]
    assert sent == [409], f"the 409 was retried: {len(sent)} insert requests answered {sent}"
    assert isinstance(info.value, ResourceAlreadyExistsError), repr(info.value)
    assert info.value.reason == "alreadyExists"


def test_failed_operation_raises_with_codes_and_messages(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    emulator.inject(
        Fault(
            kind="operation_error",
            action="machineImages.insert",
            error_code="ZONE_RESOURCE_POOL_EXHAUSTED",
            error_message="The zone does not have enough resources",
        )
    )
    operation = insert(hook)
    with pytest.raises(OperationFailedError) as info:
        hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    assert info.value.codes == ["ZONE_RESOURCE_POOL_EXHAUSTED"]
    assert "enough resources" in str(info.value)
    assert emulator.machine_images(PROJECT) == []


def test_set_labels_refreshes_a_stale_fingerprint_once(
    hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator
) -> None:
    operation = insert(hook)
    hook.wait_for_operation(operation_name=operation["name"], timeout=30)
    stale = hook.get_machine_image(name="img-1")["labelFingerprint"]
    hook.set_labels(name="img-1", labels={"a": "1"})
    with pytest.raises(PreconditionFailedError):
        hook.set_labels(name="img-1", labels={"b": "2"}, label_fingerprint=stale)
    hook.set_labels(name="img-1", labels={"c": "3"})
    assert hook.get_machine_image(name="img-1")["labels"] == {"c": "3"}


def test_pagination_reads_every_page(hook: ComputeEngineMachineImageHook, emulator: ComputeEngineEmulator) -> None:
    for n in range(7):
        emulator.add_machine_image(f"old-{n}", source_instance="us-central1-a/web-1")
    names = [i["name"] for i in hook.iter_machine_images(page_size=3)]
    assert sorted(names) == [f"old-{n}" for n in range(7)]
    assert emulator.count("machineImages.list") == 3


def test_endpoint_argument_beats_the_connection_extra(
    gcp_connection: ComputeEngineEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", connection_json("http://127.0.0.1:9"))
    hook = ComputeEngineMachineImageHook(api_endpoint=gcp_connection.url + "/compute/beta/")
    with pytest.raises(ResourceNotFoundError):
        hook.get_machine_image(name="img-1")


def test_credentials_are_never_sent_over_plain_http_to_a_remote_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.oauth2.credentials import Credentials

    monkeypatch.setenv("AIRFLOW__MACHINE_IMAGES__ALLOWED_ENDPOINTS", "http://compute.example.com:8080")  # listed
    hook = ComputeEngineMachineImageHook(api_endpoint="http://compute.example.com:8080")
    monkeypatch.setattr(hook, "get_credentials", lambda: Credentials(token="secret-token"))
    with pytest.raises(InsecureEndpointError, match="plain http") as info:
        hook.get_machine_image(name="img-1", project_id=PROJECT)
    assert "secret-token" not in str(info.value)
