"""Weekly restore drill: restore the newest backup of an instance into a scratch VM, prove it boots, delete it.

A backup nobody has restored is a hope, not a backup. Each week this DAG restores the newest READY
machine image of one instance into a scratch instance with
:class:`~airflow_machine_images.operators.ComputeEngineRestoreMachineImageOperator` and its
``source_instance`` argument (the image is chosen when the task runs, with one ``machineImages.list``, and
named in the XCom as ``chosen_image``; deferrable: the worker slot is free while Compute Engine boots it),
proves that the guest booted with
:class:`~airflow_machine_images.operators.ComputeEngineVerifyBootOperator`, and deletes it with
:class:`~airflow_machine_images.operators.ComputeEngineDeleteRestoredInstanceOperator`.

- **Boot, not RUNNING.** Compute Engine reports RUNNING as soon as the VM is scheduled; a broken boot disk
  or a kernel panic still reads RUNNING. The boot check reads the instance's serial console
  (``instances.getSerialPortOutput``, port 1) until a boot line appears (systemd's multi-user target, a
  login prompt, cloud-init's final message, Windows' "ready to use"; ``boot_pattern`` sets another), and
  fails with the console's last lines when a kernel panic shows or nothing boots by its ``timeout``. It
  reads the instance by the id the restore returned, so it checks the VM this run made. It needs the
  serial console output to be readable: the org policy ``compute.disableSerialPortLogging`` must not be
  enforced on the project (see docs/restore-drills.md).

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

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_machine_images.operators import (
    ComputeEngineDeleteRestoredInstanceOperator,
    ComputeEngineRestoreMachineImageOperator,
    ComputeEngineVerifyBootOperator,
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

    verify_boot = ComputeEngineVerifyBootOperator(
        task_id="verify_boot",
        instance_name=SCRATCH_NAME,
        zone="{{ params.zone }}",
        # the instance this run's restore made, by id: not one that took its name since
        instance_id="{{ ti.xcom_pull(task_ids='restore')['id'] }}",
        deferrable=True,
        poll_interval=10,  # a read every 10 s while the console is quiet (at most a second apart while it writes)
        timeout=900,
    )
    restore >> verify_boot

    delete = ComputeEngineDeleteRestoredInstanceOperator(
        task_id="delete_scratch_instance",
        name=SCRATCH_NAME,
        zone="{{ params.zone }}",
        # exactly what this run's restore made; empty if the restore never returned (then: this DAG's restores)
        restore_id="{{ (ti.xcom_pull(task_ids='restore') or {}).get('restore_id') or '' }}",
        deferrable=True,
        trigger_rule="all_done",  # clean up even when the restore or the boot check failed
    )

    @task
    def drill_passed() -> None:
        """Fails (upstream failed) unless the restore and the boot check succeeded: the run's verdict."""
        print("Restore drill passed")

    verify_boot >> delete
    [verify_boot, delete] >> drill_passed()
