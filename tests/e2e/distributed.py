"""The distributed e2e configuration's knobs: CeleryExecutor, two workers, two triggerers.

A smaller fleet than the local configuration's, and failures found fast: a dead worker's task is
failed 20 s after its last heartbeat, a dead triggerer's triggers are taken over 15 s after its.
"""

from __future__ import annotations

from tests.e2e.scenarios import BACKUP_DAG
from tests.e2e.stack import CELERY_EXECUTOR, StackConfig

#: The module that runs on the Celery stack (sorted after every other e2e module).
CELERY_MODULE = "test_e2e_celery.py"
TRIGGERERS = 2
WORKERS = 2
#: Each triggerer runs at most this many triggers: case (a)'s 6 waits must spread over both.
TRIGGERER_CAPACITY = 4
#: ``[machine_images] requests_per_minute_per_project``: the total across both triggerers (6 each).
REQUESTS_PER_MINUTE = 12
OPERATION_SECONDS = 20.0
AIRFLOW_ENV = {
    # A SIGKILLed worker's task is failed (and retried) 20 s after its last heartbeat (default 300 s);
    # the task supervisor heartbeats every [workers] min_heartbeat_interval (5 s).
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    # A SIGKILLed triggerer's triggers are taken over 15 s after its last heartbeat (default 30 s).
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "3",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
    "AIRFLOW__MACHINE_IMAGES__REQUESTS_PER_MINUTE_PER_PROJECT": str(REQUESTS_PER_MINUTE),
}


def celery_config() -> StackConfig:
    """The Celery stack's configuration (the cases add their own instances to the emulator)."""
    return StackConfig(
        dag_ids=(BACKUP_DAG.dag_id,),
        instances=(),
        operation_seconds=OPERATION_SECONDS,
        parallelism=8,
        extra_airflow_env=AIRFLOW_ENV,
        executor=CELERY_EXECUTOR,
        triggerers=TRIGGERERS,
        celery_workers=WORKERS,
    )
