"""Which DAG the backup cases drive, and how to fill in its run conf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


@dataclass(frozen=True)
class BackupDag:
    """A DAG that makes one machine image per instance with the deferrable insert operator, mapped.

    The cases find the mapped task by its operator, and read each image's name and source instance
    from the task instances' rendered fields, so they need nothing else about the DAG.

    :param dag_id: the DAG.
    :param conf: builds the run conf from the instances (``ZONE/NAME``) and a per-case name prefix.
    """

    dag_id: str
    conf: Callable[[Sequence[str], str], dict[str, Any]]


#: The e2e suite's own stand-in (tests/e2e/dags/e2e_fleet_backup.py).
E2E_FLEET_BACKUP = BackupDag(
    dag_id="e2e_fleet_backup",
    conf=lambda instances, prefix: {"instances": list(instances), "prefix": prefix},
)

#: The nightly fleet backup example (example_dags/example_nightly_backup.py). Since it selects its fleet
#: by label (backup=nightly) in a workload project and writes to a backup project, the cases, which
#: give each run its own instance list, run on the suite's own stand-in instead.
EXAMPLE_NIGHTLY_BACKUP = BackupDag(
    dag_id="example_nightly_backup",
    conf=lambda instances, prefix: {"instances": list(instances)},
)

#: The DAG the backup cases run (the example now selects by label; see EXAMPLE_NIGHTLY_BACKUP).
BACKUP_DAG = E2E_FLEET_BACKUP

#: The operator whose mapped task instances the cases follow.
INSERT_OPERATOR = "ComputeEngineInsertMachineImageOperator"
#: The operator extra link's name (airflow_machine_images.links.MachineImageLink.name).
LINK_NAME = "Machine Image"
#: The XCom key the operator stores the link's URL under before it defers.
LINK_XCOM_KEY = "machine_image_console_url"
