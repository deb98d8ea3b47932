from __future__ import annotations

import uuid

import pytest

from airflow_machine_images.flows.request_ids import TaskInstanceIdentity, derive_request_id

IDENTITY = TaskInstanceIdentity(dag_id="backup", task_id="create", run_id="manual__2026-01-01", map_index=-1)


def rid(identity: TaskInstanceIdentity = IDENTITY, **overrides: object) -> str:
    kwargs: dict = {"project_id": "demo-project", "resource_name": "web-1", "verb": "insert", "generation": 0}
    kwargs.update(overrides)
    return derive_request_id(identity, **kwargs)


def test_is_a_valid_nonzero_uuid_and_stable() -> None:
    value = rid()
    parsed = uuid.UUID(value)
    assert parsed.version == 5
    assert parsed.int != 0
    assert value == str(parsed)
    assert rid() == value


@pytest.mark.parametrize(
    "change",
    [
        {"identity": TaskInstanceIdentity("backup", "create", "manual__2026-01-02", -1)},
        {"identity": TaskInstanceIdentity("backup", "create", "manual__2026-01-01", 0)},
        {"identity": TaskInstanceIdentity("backup", "other", "manual__2026-01-01", -1)},
        {"identity": TaskInstanceIdentity("other", "create", "manual__2026-01-01", -1)},
        {"resource_name": "web-2"},
        {"project_id": "other-project"},
        {"verb": "delete"},
        {"generation": 1},
    ],
)
def test_every_part_of_the_identity_changes_the_id(change: dict) -> None:
    identity = change.pop("identity", IDENTITY)
    assert rid(identity, **change) != rid()


def test_fields_cannot_bleed_into_each_other() -> None:
    a = TaskInstanceIdentity(dag_id="a/b", task_id="c", run_id="r")
    b = TaskInstanceIdentity(dag_id="a", task_id="b/c", run_id="r")
    assert rid(a) != rid(b)


class FakeTI:
    dag_id = "backup"
    task_id = "create"
    run_id = "manual__2026-01-01"
    map_index = None
    try_number = 3


def test_identity_of_a_task_instance_ignores_try_number_and_defaults_map_index() -> None:
    identity = TaskInstanceIdentity.of(FakeTI())
    assert identity == IDENTITY
    retry = FakeTI()
    retry.try_number = 4
    assert rid(TaskInstanceIdentity.of(retry)) == rid(identity)


def test_negative_generation_is_refused() -> None:
    with pytest.raises(ValueError, match="generation"):
        rid(generation=-1)
