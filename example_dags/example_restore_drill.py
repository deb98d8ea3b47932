"""Weekly restore drill: restore the newest backup of an instance into a scratch VM, check it runs, delete it.

A backup nobody has restored is a hope, not a backup. Each week this DAG restores the newest READY
machine image of one instance into a scratch instance with
:class:`~airflow_machine_images.operators.ComputeEngineRestoreMachineImageOperator` and its
``source_instance`` argument (the image is chosen when the task runs, with one ``machineImages.list``, and
named in the XCom as ``chosen_image``; deferrable: the worker slot is free while Compute Engine boots it),
checks that the restore's result says RUNNING, and deletes it with
:class:`~airflow_machine_images.operators.ComputeEngineDeleteRestoredInstanceOperator`.

What the cleanup may delete, and how it leaves nothing billed behind:

- **Ownership.** The restore labels its instance with this DAG (``restore-dag``) and with itself
  (``restore-id``, also in its XCom as ``restore_id``). The cleanup is given that ``restore_id``, so it
  deletes exactly the instance this run's restore made, and refuses anything else (a permanent failure,
  nothing deleted), even a VM another DAG restored that carries the restore labels: a production VM a
  disaster-recovery DAG restored keeps them for life. The ``restore_id`` only narrows: the cleanup
  deletes restores of this DAG alone (``allow_dag_ids=[...]`` names others), and of those only this one.
- **Protection.** A VM restored from an image of a protected VM inherits its deletion protection. The
  scratch VM is made unprotected (``deletion_protection=False``, the default); an owned instance that is
  protected anyway is unprotected by the cleanup (``instances.setDeletionProtection``) before it is deleted.
- **Disks.** Disks whose ``autoDelete`` is false in the image survive ``instances.delete``. The cleanup
  reads them before deleting the instance and deletes those the restore made once it is gone, by id,
  each confirmed gone; its XCom lists them (``disks_deleted``; ``disks_kept`` for any it may not touch).
  A restore that ends unusable (TERMINATED) deletes what it made the same way before failing.

The delete runs whatever happened before it (``trigger_rule="all_done"``), so a failed drill leaves no
scratch VM behind, and the final ``drill_passed`` task makes the run fail when the drill did.

Runs as is against the bundled emulator, or against Google Cloud with the ``google_cloud_default``
connection: set the ``source_instance`` param (and ``image_project`` if backups live in a separate
backup project: a restore across projects then also needs ``service_accounts`` and ``network_interfaces``
of the scratch VM's project, which the restore operator asks for, naming them, before any request).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
)

#: When the run was due, as text: ``run_after`` on Airflow 3 (where a manual run may have no logical
#: date); Airflow 2 has no ``run_after``, and its runs always have a logical date.
RUN_STAMP = (
    "{{ (dag_run.run_after if dag_run.run_after is defined else dag_run.logical_date).strftime('%Y%m%d-%H%M%S') }}"
)
SCRATCH_NAME = "drill-" + RUN_STAMP

with DAG(
    dag_id="example_restore_drill",
    description="Restore the newest machine image of an instance into a scratch VM, check it, delete it",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "source_instance": Param("us-central1-a/web-1", type="string", description="ZONE/INSTANCE backed up"),
        "image_project": Param(
            None, type=["null", "string"], description="the backup project (default: the connection's)"
        ),
        "zone": Param("us-central1-a", type="string", description="zone of the scratch instance"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(seconds=30)},
    tags=["example", "compute-engine", "machine-image", "restore"],
) as dag:
    restore = ComputeEngineRestoreMachineImageOperator(
        task_id="restore",
        name=SCRATCH_NAME,
        zone="{{ params.zone }}",
        # the newest READY image of this instance, chosen when the task runs (its XCom names it: chosen_image)
        source_instance="{{ params.source_instance }}",
        image_project="{{ params.image_project or '' }}",
        labels={"purpose": "restore-drill"},
        deletion_protection=False,  # the default, written out: inherited protection would block the cleanup
        deferrable=True,
        timeout=1800,
    )

    @task
    def check_running(restored: dict[str, Any]) -> None:
        """The drill passes only if the restore's result says the scratch instance is RUNNING."""
        if restored["status"] != "RUNNING":
            raise RuntimeError(f"Restored instance {restored['name']} is {restored['status']}, not RUNNING")
        print(f"Drill: {restored['source_machine_image']} restored into {restored['name']}, RUNNING")

    delete = ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete_scratch_instance",
        name=SCRATCH_NAME,
        zone="{{ params.zone }}",
        # exactly what this run's restore made; empty if the restore never returned (then: this DAG's restores)
        restore_id="{{ (ti.xcom_pull(task_ids='restore') or {}).get('restore_id') or '' }}",
        deferrable=True,
        trigger_rule="all_done",  # clean up even when the restore or the check failed
    )

    @task
    def drill_passed() -> None:
        """Fails (upstream failed) unless the restore and the check succeeded: the run's verdict."""
        print("Restore drill passed")

    checked = check_running(restore.output)
    checked >> delete
    [checked, delete] >> drill_passed()
