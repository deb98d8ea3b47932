"""Canonical source-instance names: project numbers and numeric ids resolved once, never a false conflict."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_machine_images.bodies.labels import OWNER_LABEL
from airflow_machine_images.exceptions import (
    MachineImageConflictError,
    PermissionDeniedError,
    ResourceNotFoundError,
)
from airflow_machine_images.flows.create import CreateRequest
from airflow_machine_images.flows.machine_image import MachineImageTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity
from airflow_machine_images.flows.source_names import SourceNames, canonical_from_instance, has_numbers
from airflow_machine_images.validation import InstanceRef, parse_source_instance

NUMBER = "123456789012"
INSTANCE_ID = "4567890123456789012"
BASE = "https://www.googleapis.com/compute/v1/"
WEB_1 = {"name": "web-1", "id": INSTANCE_ID, "selfLink": f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-1"}


class FakeInstances:
    """``get_instance`` over a table: (project, zone, name or id) -> resource or exception; counts calls."""

    def __init__(self, table: dict[tuple[str, str, str], Any]) -> None:
        self.table = table
        self.calls: list[tuple[str, str, str]] = []

    def get_instance(self, *, zone: str, name: str, project_id: str | None = None) -> dict[str, Any]:
        key = (str(project_id), zone, name)
        self.calls.append(key)
        found = self.table.get(key, ResourceNotFoundError("404"))
        if isinstance(found, Exception):
            raise found
        return found


def ref(text: str) -> InstanceRef:
    return parse_source_instance(text, default_project=None)


def web_1_hook() -> FakeInstances:
    table = {(p, "us-central1-a", i): WEB_1 for p in ("prod-app", NUMBER) for i in ("web-1", INSTANCE_ID)}
    table[("prod-app", "us-central1-a", "web-2")] = {
        "name": "web-2",
        "id": "99",
        "selfLink": f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-2",
    }
    return FakeInstances(table)


@pytest.mark.parametrize(
    ("text", "numeric"),
    [
        ("projects/prod-app/zones/us-central1-a/instances/web-1", False),
        (f"projects/{NUMBER}/zones/us-central1-a/instances/web-1", True),
        (f"projects/prod-app/zones/us-central1-a/instances/{INSTANCE_ID}", True),
        ("projects/example.com:prod-app/zones/us-central1-a/instances/web-1", False),
    ],
)
def test_numbers_are_told_apart_from_ids_and_names(text: str, numeric: bool) -> None:
    assert has_numbers(ref(text)) is numeric


def test_the_canonical_form_comes_from_the_self_link_and_the_name() -> None:
    resolved = canonical_from_instance(WEB_1)
    assert resolved.ref == InstanceRef("prod-app", "us-central1-a", "web-1")
    assert resolved.instance_id == INSTANCE_ID


def test_references_without_numbers_are_compared_without_any_call() -> None:
    hook, names = web_1_hook(), SourceNames()
    url = f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-1"
    assert names.same_instance(hook, ref("projects/prod-app/zones/us-central1-a/instances/web-1"), ref(url)) is True
    assert names.same_instance(hook, ref("projects/prod-app/zones/us-central1-a/instances/web-2"), ref(url)) is False
    assert hook.calls == [] and names.lookups == 0


@pytest.mark.parametrize(
    "requested",
    [
        f"projects/{NUMBER}/zones/us-central1-a/instances/web-1",
        f"projects/prod-app/zones/us-central1-a/instances/{INSTANCE_ID}",
        f"projects/{NUMBER}/zones/us-central1-a/instances/{INSTANCE_ID}",
    ],
)
def test_a_number_is_resolved_once_and_compares_equal(requested: str) -> None:
    hook, names = web_1_hook(), SourceNames()
    image_source = ref(f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-1")
    for _ in range(3):
        assert names.same_instance(hook, ref(requested), image_source) is True
    assert len(hook.calls) == 1 and names.lookups == 1  # cached for the rest of the try


def test_a_number_naming_another_instance_is_a_real_difference() -> None:
    hook, names = web_1_hook(), SourceNames()
    image_source = ref("projects/prod-app/zones/us-central1-a/instances/web-2")
    assert (
        names.same_instance(hook, ref(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1"), image_source) is False
    )


def test_an_image_source_given_by_number_is_resolved_too() -> None:
    hook, names = web_1_hook(), SourceNames()
    requested = ref("projects/prod-app/zones/us-central1-a/instances/web-1")
    assert names.same_instance(hook, requested, ref(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1"))
    assert len(hook.calls) == 1


@pytest.mark.parametrize(
    ("error", "said"),
    [(ResourceNotFoundError("404"), "found no instance"), (PermissionDeniedError("403"), "compute.instances.get")],
)
def test_an_unreadable_instance_makes_the_answer_unknown(error: Exception, said: str) -> None:
    requested = ref(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1")
    hook, names = FakeInstances({(NUMBER, "us-central1-a", "web-1"): error}), SourceNames()
    existing = ref("projects/prod-app/zones/us-central1-a/instances/web-1")
    assert names.same_instance(hook, requested, existing) is None
    assert said in names.why(requested)


def test_a_self_link_that_keeps_the_number_is_compared_by_instance_id() -> None:
    # Should the server echo the number (AIP-2510 allows it), the numeric ids decide.
    echoed = {**WEB_1, "selfLink": f"{BASE}projects/{NUMBER}/zones/us-central1-a/instances/web-1"}
    hook = FakeInstances({(NUMBER, "us-central1-a", "web-1"): echoed, ("prod-app", "us-central1-a", "web-1"): WEB_1})
    names = SourceNames()
    requested = ref(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1")
    assert names.same_instance(hook, requested, ref("projects/prod-app/zones/us-central1-a/instances/web-1")) is True
    assert len(hook.calls) == 2


# ---------------------------------------------------------------- in the insert flow


def request_for(source: str) -> CreateRequest:
    identity = TaskInstanceIdentity("dag", "task", "run")
    return CreateRequest(
        target=MachineImageTarget(ref(source)),
        project_id="prod-app",
        name="img",
        body={"name": "img"},
        request_ids=RequestIds(identity, "prod-app", "img", "insert"),
        owner_key="dag.task.run",
    )


LOG = logging.getLogger("test")


def source_to_send(hook: Any, request: CreateRequest, log: logging.Logger) -> str:
    """The machine-image target's choice of ``sourceInstance`` for ``request``."""
    return request.target.source_to_send(hook, log)  # type: ignore[attr-defined]


def check_source(hook: Any, request: CreateRequest, image: dict[str, Any], log: logging.Logger) -> None:
    """The machine-image target's source check of ``image`` against ``request``."""
    request.target.check_source(hook, request, image, log)


def test_the_canonical_form_is_sent_and_reused_by_the_read_back() -> None:
    hook = web_1_hook()
    request = request_for(f"projects/{NUMBER}/zones/us-central1-a/instances/{INSTANCE_ID}")
    assert source_to_send(hook, request, LOG) == "projects/prod-app/zones/us-central1-a/instances/web-1"  # type: ignore[arg-type]
    image = {"sourceInstance": f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-1"}
    check_source(hook, request, image, LOG)  # type: ignore[arg-type]
    assert len(hook.calls) == 1


def test_a_source_without_numbers_is_sent_as_given_without_any_call() -> None:
    hook = web_1_hook()
    request = request_for("projects/prod-app/zones/us-central1-a/instances/web-1")
    assert source_to_send(hook, request, LOG) == request.target.source.partial_url  # type: ignore[arg-type]
    check_source(hook, request, {"sourceInstance": f"{BASE}{request.target.source.partial_url}"}, LOG)  # type: ignore[arg-type]
    assert hook.calls == []


def test_a_different_source_is_still_a_conflict() -> None:
    request = request_for(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1")
    image = {"sourceInstance": f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-2"}
    with pytest.raises(MachineImageConflictError, match="web-2"):
        check_source(web_1_hook(), request, image, LOG)  # type: ignore[arg-type]


def test_unknown_sources_keep_our_own_image_and_refuse_anyone_elses(caplog: pytest.LogCaptureFixture) -> None:
    hook = FakeInstances({(NUMBER, "us-central1-a", "web-1"): PermissionDeniedError("403")})
    request = request_for(f"projects/{NUMBER}/zones/us-central1-a/instances/web-1")
    image = {"sourceInstance": f"{BASE}projects/prod-app/zones/us-central1-a/instances/web-1"}
    with caplog.at_level(logging.WARNING, logger="test"):
        check_source(hook, request, {**image, "labels": {OWNER_LABEL: request.owner_key}}, LOG)  # type: ignore[arg-type]
    assert "compute.instances.get" in caplog.text
    with pytest.raises(MachineImageConflictError, match=r"compute\.instances\.get"):
        check_source(hook, request, {**image, "labels": {OWNER_LABEL: "someone.else"}}, LOG)  # type: ignore[arg-type]
    assert len(hook.calls) == 1
