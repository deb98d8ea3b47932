"""The host name each e2e Celery worker reports (``[core] hostname_callable`` points here).

Both workers run on one machine, so the real host name would not tell their task instances apart;
each worker's environment names it instead (``AMI_E2E_HOSTNAME``), and Airflow's task supervisor
records that as the task instance's ``hostname``.
"""

from __future__ import annotations

import os
import socket

#: The environment variable naming the worker.
HOSTNAME_VARIABLE = "AMI_E2E_HOSTNAME"


def hostname() -> str:
    """``$AMI_E2E_HOSTNAME``, else the machine's fully qualified name."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()
