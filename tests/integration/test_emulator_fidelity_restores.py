"""Google's discovery client drives the emulator's restore, disk and protection routes (issue 22).

Each test names the real behaviour it checks; the sources are in docs/reliability.md and in
``airflow_machine_images/emulator/instances.py``, ``disk_store.py`` and ``machine_image_store.py``.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator

pytestmark = pytest.mark.integration

PROJECT = "fidelity-project"
BACKUPS = "fidelity-backups"
ZONE = "us-central1-a"
KEY = base64.b64encode(b"k" * 32).decode()

google_auth_credentials = pytest.importorskip("google.auth.credentials")
discovery = pytest.importorskip("googleapiclient.discovery")
googleapiclient_errors = pytest.importorskip("googleapiclient.errors")


@pytest.fixture
def emu() -> Any:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=22) as emulator:
        emulator.add_instance(f"{ZONE}/web-1", disks=[{"autoDelete": True}, {"autoDelete": False, "sizeGb": 20}])
        yield emulator


def compute(emu: ComputeEngineEmulator, version: str = "beta") -> Any:
    return discovery.build(
        "compute",
        version,
        static_discovery=True,
        credentials=google_auth_credentials.AnonymousCredentials(),
        client_options={"api_endpoint": f"{emu.url}/compute/{version}/"},
        cache_discovery=False,
    )


def http_error(call: Any) -> Any:
    with pytest.raises(googleapiclient_errors.HttpError) as info:
        call.execute()
    return info.value


def reason(error: Any) -> str:
    return str(error.error_details[0]["reason"])


def wait(client: Any, operation: dict[str, Any]) -> dict[str, Any]:
    while operation["status"] != "DONE":
        operation = client.zoneOperations().wait(project=PROJECT, zone=ZONE, operation=operation["name"]).execute()
    return operation


def restore(client: Any, name: str, image: str = "img-1", project: str = PROJECT, **fields: Any) -> dict[str, Any]:
    body = {"name": name, "sourceMachineImage": f"projects/{project}/global/machineImages/{image}", **fields}
    return client.instances().insert(project=PROJECT, zone=ZONE, body=body, requestId=str(uuid.uuid4())).execute()


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_official_client_restored_disks_are_named_after_the_instance_and_keep_auto_delete(
    emu: ComputeEngineEmulator, version: str
) -> None:
    client = compute(emu, version)
    emu.add_machine_image("img-1", source_instance=f"{ZONE}/web-1")
    image = client.machineImages().get(project=PROJECT, machineImage="img-1").execute()
    assert [d["autoDelete"] for d in image["sourceInstanceProperties"]["disks"]] == [True, False]
    assert len(image["savedDisks"]) == 2
    wait(client, restore(client, "r-1"))
    instance = client.instances().get(project=PROJECT, zone=ZONE, instance="r-1").execute()
    attached = [(d["source"].rsplit("/", 1)[-1], d["boot"], d["autoDelete"]) for d in instance["disks"]]
    assert attached == [("r-1", True, True), ("r-1-1", False, False)]
    disks = client.disks()
    boot = disks.get(project=PROJECT, zone=ZONE, disk="r-1").execute()
    data = disks.get(project=PROJECT, zone=ZONE, disk="r-1-1").execute()
    assert boot["users"] == [instance["selfLink"]] and data["sizeGb"] == "20"
    assert boot["sourceMachineImage"].endswith(f"/projects/{PROJECT}/global/machineImages/img-1")
    assert boot["sourceMachineImageId"] == image["id"]
    assert boot["creationTimestamp"] == instance["creationTimestamp"]
    assert disks.get(project=PROJECT, zone=ZONE, disk=data["id"]).execute()["name"] == "r-1-1"  # by numeric id

    in_use = http_error(disks.delete(project=PROJECT, zone=ZONE, disk="r-1-1", requestId=str(uuid.uuid4())))
    assert in_use.status_code == 400 and reason(in_use) == "resourceInUseByAnotherResource"
    assert "is already being used by" in str(in_use)

    deleted = client.instances().delete(project=PROJECT, zone=ZONE, instance=instance["id"]).execute()
    wait(client, deleted)
    assert http_error(disks.get(project=PROJECT, zone=ZONE, disk="r-1")).status_code == 404  # autoDelete: gone
    survivor = disks.get(project=PROJECT, zone=ZONE, disk="r-1-1").execute()
    assert "users" not in survivor  # autoDelete false: it survives, detached, and keeps billing
    request_id = str(uuid.uuid4())
    deletion = disks.delete(project=PROJECT, zone=ZONE, disk=survivor["id"], requestId=request_id).execute()
    assert deletion["operationType"] == "delete" and deletion["targetId"] == survivor["id"]
    assert disks.get(project=PROJECT, zone=ZONE, disk="r-1-1").execute()["status"] == "DELETING"
    wait(client, deletion)
    assert (
        disks.delete(project=PROJECT, zone=ZONE, disk="r-1-1", requestId=request_id).execute()["name"]
        == (deletion["name"])
    )  # a remembered requestId is replayed
    assert http_error(disks.get(project=PROJECT, zone=ZONE, disk="r-1-1")).status_code == 404


def test_official_client_restores_an_image_named_by_project_number_and_gets_the_project_id_back(
    emu: ComputeEngineEmulator,
) -> None:
    client = compute(emu)
    emu.add_machine_image("img-1", source_instance=f"{ZONE}/web-1")
    number = emu.project_number(PROJECT)
    made = wait(client, restore(client, "r-1", project=number))
    assert made.get("error") is None
    instance = client.instances().get(project=number, zone=ZONE, instance="r-1").execute()
    assert instance["sourceMachineImage"].endswith(f"/projects/{PROJECT}/global/machineImages/img-1")  # the id


def test_official_client_meets_a_taken_disk_name_as_a_409_naming_the_disk(emu: ComputeEngineEmulator) -> None:
    client = compute(emu)
    emu.add_machine_image("img-1", source_instance=f"{ZONE}/web-1")
    emu.add_disk("r-1", ZONE)  # left behind by an earlier instance of that name
    taken = http_error(
        client.instances().insert(
            project=PROJECT,
            zone=ZONE,
            body={"name": "r-1", "sourceMachineImage": f"projects/{PROJECT}/global/machineImages/img-1"},
        )
    )
    assert taken.status_code == 409 and reason(taken) == "alreadyExists"
    assert f"'projects/{PROJECT}/zones/{ZONE}/disks/r-1'" in str(taken)
    assert http_error(client.instances().get(project=PROJECT, zone=ZONE, instance="r-1")).status_code == 404
    assert [d["name"] for d in emu.disks()] == ["r-1", "web-1", "web-1-1"]  # nothing was made


def test_official_client_deletion_protection_is_inherited_enforced_and_cleared(emu: ComputeEngineEmulator) -> None:
    client = compute(emu)
    emu.add_instance(f"{ZONE}/db-1", deletion_protection=True)
    emu.add_machine_image("img-db", source_instance=f"{ZONE}/db-1")
    image = client.machineImages().get(project=PROJECT, machineImage="img-db").execute()
    assert image["sourceInstanceProperties"]["deletionProtection"] is True
    wait(client, restore(client, "r-1", image="img-db"))
    wait(client, restore(client, "r-2", image="img-db", deletionProtection=False))  # the request overrides it
    instances = client.instances()
    assert instances.get(project=PROJECT, zone=ZONE, instance="r-1").execute()["deletionProtection"] is True
    assert instances.get(project=PROJECT, zone=ZONE, instance="r-2").execute()["deletionProtection"] is False

    refused = http_error(instances.delete(project=PROJECT, zone=ZONE, instance="r-1"))
    assert refused.status_code == 400 and reason(refused) == "invalidResourceUsage"
    assert "Resource cannot be deleted if it's protected against deletion" in str(refused)
    request_id = str(uuid.uuid4())
    cleared = instances.setDeletionProtection(
        project=PROJECT, zone=ZONE, resource="r-1", deletionProtection=False, requestId=request_id
    ).execute()
    assert cleared["operationType"] == "setDeletionProtection" and wait(client, cleared).get("error") is None
    again = instances.setDeletionProtection(
        project=PROJECT, zone=ZONE, resource="r-1", deletionProtection=False, requestId=request_id
    ).execute()
    assert again["name"] == cleared["name"]  # a remembered requestId is replayed
    assert instances.get(project=PROJECT, zone=ZONE, instance="r-1").execute()["deletionProtection"] is False
    wait(client, instances.delete(project=PROJECT, zone=ZONE, instance="r-1").execute())
    protect = instances.setDeletionProtection(project=PROJECT, zone=ZONE, resource="r-2").execute()  # default true
    wait(client, protect)
    assert instances.get(project=PROJECT, zone=ZONE, instance="r-2").execute()["deletionProtection"] is True


def test_official_client_gets_and_deletes_images_by_numeric_id_and_a_remade_name_has_a_new_id(
    emu: ComputeEngineEmulator,
) -> None:
    client = compute(emu)
    images = client.machineImages()
    first = emu.add_machine_image("img-1", source_instance=f"{ZONE}/web-1")
    assert images.get(project=PROJECT, machineImage=first["id"]).execute()["name"] == "img-1"
    deletion = images.delete(project=PROJECT, machineImage=first["id"], requestId=str(uuid.uuid4())).execute()
    assert deletion["targetId"] == first["id"]
    while deletion["status"] != "DONE":
        deletion = client.globalOperations().wait(project=PROJECT, operation=deletion["name"]).execute()
    remade = emu.add_machine_image("img-1", source_instance=f"{ZONE}/web-1")
    assert remade["id"] != first["id"]
    assert http_error(images.get(project=PROJECT, machineImage=first["id"])).status_code == 404
    assert images.get(project=PROJECT, machineImage="img-1").execute()["id"] == remade["id"]


def test_official_client_restores_across_projects_only_with_a_service_account_and_its_own_network(
    emu: ComputeEngineEmulator,
) -> None:
    client = compute(emu)
    emu.add_instance(f"projects/{BACKUPS}/zones/{ZONE}/instances/vault-1")
    emu.add_machine_image(
        "img-x", source_instance=f"projects/{BACKUPS}/zones/{ZONE}/instances/vault-1", project=BACKUPS
    )
    account = [{"email": f"runner@{PROJECT}.iam.gserviceaccount.com", "scopes": []}]
    network = [{"network": f"projects/{PROJECT}/global/networks/default"}]
    body = {"name": "r-1", "sourceMachineImage": f"projects/{BACKUPS}/global/machineImages/img-x"}
    no_account = http_error(client.instances().insert(project=PROJECT, zone=ZONE, body=body))
    assert no_account.status_code == 400 and "ServiceAccount is required" in str(no_account)
    with_account = {**body, "serviceAccounts": account}
    foreign_network = http_error(client.instances().insert(project=PROJECT, zone=ZONE, body=with_account))
    assert foreign_network.status_code == 400 and "Cross-project references" in str(foreign_network)
    made = wait(client, restore(client, "r-1", image="img-x", project=BACKUPS, serviceAccounts=account,
                                networkInterfaces=network))  # fmt: skip
    assert made.get("error") is None
    instance = client.instances().get(project=PROJECT, zone=ZONE, instance="r-1").execute()
    assert instance["serviceAccounts"][0]["email"] == account[0]["email"]


def test_official_client_restores_a_key_protected_image_only_with_its_key(emu: ComputeEngineEmulator) -> None:
    client = compute(emu)
    operation = (
        client.machineImages()
        .insert(
            project=PROJECT,
            body={"name": "img-k", "machineImageEncryptionKey": {"rawKey": KEY}},
            sourceInstance=f"projects/{PROJECT}/zones/{ZONE}/instances/web-1",
        )
        .execute()
    )
    while operation["status"] != "DONE":
        operation = client.globalOperations().wait(project=PROJECT, operation=operation["name"]).execute()
    body = {"name": "r-1", "sourceMachineImage": f"projects/{PROJECT}/global/machineImages/img-k"}
    missing = http_error(client.instances().insert(project=PROJECT, zone=ZONE, body=body))
    assert missing.status_code == 400 and "customer supplied encryption key, but none was provided" in str(missing)
    wrong = {**body, "sourceMachineImageEncryptionKey": {"rawKey": base64.b64encode(b"w" * 32).decode()}}
    assert http_error(client.instances().insert(project=PROJECT, zone=ZONE, body=wrong)).status_code == 400
    right = {**body, "sourceMachineImageEncryptionKey": {"rawKey": KEY}}
    made = wait(client, client.instances().insert(project=PROJECT, zone=ZONE, body=right).execute())
    assert made.get("error") is None
    assert KEY not in str(emu.requests)  # the request log redacts key material


def test_official_client_restores_an_image_under_a_kms_key_without_any_key(emu: ComputeEngineEmulator) -> None:
    """Only a customer-supplied key must be sent back (Instance.sourceMachineImageEncryptionKey: "Required if
    the source machine image is protected by a customer-supplied encryption key"); a Cloud KMS key is not."""
    client = compute(emu)
    kms = "projects/k/locations/us/keyRings/r/cryptoKeys/c"
    operation = (
        client.machineImages()
        .insert(
            project=PROJECT,
            body={"name": "img-kms", "machineImageEncryptionKey": {"kmsKeyName": kms}},
            sourceInstance=f"projects/{PROJECT}/zones/{ZONE}/instances/web-1",
        )
        .execute()
    )
    while operation["status"] != "DONE":
        operation = client.globalOperations().wait(project=PROJECT, operation=operation["name"]).execute()
    body = {"name": "r-kms", "sourceMachineImage": f"projects/{PROJECT}/global/machineImages/img-kms"}
    made = wait(client, client.instances().insert(project=PROJECT, zone=ZONE, body=body).execute())
    assert made.get("error") is None


def test_official_client_meets_the_per_source_machine_image_limit_when_it_is_on(emu: ComputeEngineEmulator) -> None:
    client = compute(emu)
    images, operations = client.machineImages(), client.globalOperations()
    source = f"projects/{PROJECT}/zones/{ZONE}/instances/web-1"

    def insert(name: str) -> dict[str, Any]:
        operation = images.insert(project=PROJECT, body={"name": name}, sourceInstance=source).execute()
        while operation["status"] != "DONE":
            operation = operations.wait(project=PROJECT, operation=operation["name"]).execute()
        return operation

    assert all(insert(f"off-{n}").get("error") is None for n in range(3))  # off by default
    emu.set_options(source_image_limit_scale=0.002)  # 10 minutes -> 1.2 s, 60 minutes -> 7.2 s
    assert insert("on-1").get("error") is None
    limited = insert("on-2")
    assert limited["error"]["errors"][0]["code"] == "RESOURCE_OPERATION_RATE_EXCEEDED"
    assert "Too frequent operations from the source resource" in limited["error"]["errors"][0]["message"]
    assert limited["httpErrorStatusCode"] == 403
    assert http_error(images.get(project=PROJECT, machineImage="on-2")).status_code == 404
    time.sleep(1.3)  # the emulator's scaled 10-minute window has passed
    assert insert("on-3").get("error") is None
