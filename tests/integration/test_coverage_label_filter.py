"""Coverage that does not share the blind spot it checks (issue 25, item 3), with dag.test().

The emulator's ``label_filter_drop`` fault makes every ``instances.aggregatedList`` answer whose filter has
a ``labels.`` term leave ``db-1`` out, silently: the failure gcloud's filter rewriter avoids by never sending
label terms ("server side labels matching is currently problematic", ``filter_rewrite.py``). A fleet selected
by that filter would never back ``db-1`` up, and a coverage check asking the same question would pass.
The operators list without the label filter and match the labels themselves, so the check fails naming
``db-1``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator, Fault
from airflow_machine_images.hooks import ComputeEngineMachineImageHook
from tests.integration.conftest import PROJECT, load_dag, task_states, xcom_result

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

BACKUPS = "test-backups"
NIGHTLY = {"backup": "nightly"}
DB_1 = f"projects/{PROJECT}/zones/us-east1-b/instances/db-1"


@pytest.fixture
def blind_spot(gcp_connection: ComputeEngineEmulator) -> ComputeEngineEmulator:
    """Three nightly instances, fresh images of two; the server drops db-1 from label-filtered answers."""
    for instance in ("us-central1-a/web-2", "us-central1-a/web-3", "us-east1-b/db-1"):
        gcp_connection.add_instance(instance, labels=NIGHTLY)
    gcp_connection.add_instance("us-east1-b/db-2", labels={"backup": "weekly"})
    for name in ("web-2", "web-3"):
        gcp_connection.add_machine_image(
            f"{name}-new",
            source_instance=f"projects/{PROJECT}/zones/us-central1-a/instances/{name}",
            project=BACKUPS,
            creation_timestamp=datetime.now(timezone.utc) - timedelta(hours=2),
        )
    gcp_connection.inject(
        Fault(kind="label_filter_drop", action="instances.aggregatedList", times=None, instance_names=["db-1"])
    )
    return gcp_connection


def test_the_fault_hides_db_1_from_a_label_filtered_listing(blind_spot: ComputeEngineEmulator) -> None:
    """What the operators sent before: the server's label-filtered answer has no db-1, and no warning."""
    hook = ComputeEngineMachineImageHook()
    answer = hook.execute_call(hook.api.aggregated_list_instances(PROJECT, filter_='(labels.backup = "nightly")'))
    listed = {i["name"] for scope in answer["items"].values() for i in scope.get("instances", [])}
    assert listed == {"web-2", "web-3"} and "warning" not in answer and "unreachables" not in answer
    unfiltered = hook.execute_call(hook.api.aggregated_list_instances(PROJECT))
    assert "db-1" in {i["name"] for scope in unfiltered["items"].values() for i in scope.get("instances", [])}


def test_the_coverage_check_catches_an_instance_the_label_filter_drops(blind_spot: ComputeEngineEmulator) -> None:
    dag_run = load_dag("ami_test_coverage").test()
    assert task_states(dag_run) == {"coverage": "failed"}
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.execute(
            XComModel.get_many(
                key="coverage", run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids="coverage"
            ).with_only_columns(XComModel.value)
        ).first()
    table = XComModel.deserialize_value(row)
    assert (table["checked"], table["ok"], table["missing"]) == (3, 2, [DB_1])
    listings = [r for r in blind_spot.requests if r.action == "instances.aggregatedList"]
    assert listings and all("labels." not in r.query.get("filter", "") for r in listings)


def test_fleet_selection_keeps_the_instance_the_label_filter_drops(blind_spot: ComputeEngineEmulator) -> None:
    dag_run = load_dag("ami_test_list_instances").test()
    assert task_states(dag_run) == {"select": "success"}
    selected = [instance["source_instance"] for instance in xcom_result(dag_run, "select")]
    assert DB_1 in selected and len(selected) == 3
