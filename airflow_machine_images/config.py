"""The provider's configuration section, as declared to Airflow (``get_provider_info()["config"]``).

Data only, so the package's ``__init__`` can declare it without importing anything: Airflow's
providers manager merges it into ``airflow config list`` and gives the defaults to ``conf``; the
values are read (and checked) by :mod:`airflow_machine_images.triggers.budget` when a trigger runs,
and ``allowed_endpoints`` by :mod:`airflow_machine_images.hooks.transport_security` when a hook is used.
"""

from __future__ import annotations

from typing import Any

#: The section: ``[machine_images]`` in airflow.cfg, ``AIRFLOW__MACHINE_IMAGES__<OPTION>`` in the environment.
SECTION = "machine_images"
#: The total requests per minute one project may see from all triggerers' waits together.
REQUESTS_PER_MINUTE_PER_PROJECT = "requests_per_minute_per_project"
#: How many triggerers share that total (each takes its share).
TRIGGERERS = "triggerers"
#: Where requests (and with them tokens and keys) may go: see :mod:`airflow_machine_images.validation.endpoints`.
ALLOWED_ENDPOINTS = "allowed_endpoints"
#: How long a create refused by the per-source machine-image limit waits before it is submitted again.
SOURCE_IMAGE_LIMIT_WAIT_SECONDS = "source_image_limit_wait_seconds"

DEFAULT_REQUESTS_PER_MINUTE_PER_PROJECT = 60
DEFAULT_TRIGGERERS = 1
#: Compute Engine makes a machine image of one source instance "at most once every 10 minutes" (Create
#: machine images page): ten minutes after a refusal, that window has passed.
DEFAULT_SOURCE_IMAGE_LIMIT_WAIT_SECONDS = 600
#: Google's API hosts over https (the API's root and the regional, locational and Private Service Connect
#: names under googleapis.com), and loopback for the emulator.
DEFAULT_ALLOWED_ENDPOINTS = "https://compute.googleapis.com, https://*.googleapis.com, loopback"
#: The release that added the section.
VERSION_ADDED = "0.1.0"
#: The release that adds ``allowed_endpoints`` (the next after 0.1.0).
ALLOWED_ENDPOINTS_ADDED = "0.2.0"
#: The release that adds ``source_image_limit_wait_seconds`` (the next after 0.1.0).
SOURCE_IMAGE_LIMIT_ADDED = "0.2.0"


def env_var(option: str) -> str:
    """The environment variable that sets ``option`` of :data:`SECTION`, as for any Airflow option.

    :param option: the option name.
    """
    return f"AIRFLOW__{SECTION.upper()}__{option.upper()}"


def provider_config() -> dict[str, Any]:
    """The ``config`` entry of ``get_provider_info()`` (Airflow's ``provider_info.schema.json`` form)."""
    return {
        SECTION: {
            "description": "Settings of airflow-machine-images' waits, in the triggerer and on workers.",
            "options": {
                REQUESTS_PER_MINUTE_PER_PROJECT: {
                    "description": (
                        "The most Compute Engine API requests per minute that the waits of this package "
                        "(deferred operators and sensors) may send to one project, in total across all "
                        "triggerers. Each triggerer takes an equal share: this value divided by "
                        f"``{TRIGGERERS}``, rounded down, and never less than 1, counted across every wait "
                        "of the project in that triggerer (operations of every zone, global ones, machine "
                        "images). A task may set a smaller total with the "
                        f"``{REQUESTS_PER_MINUTE_PER_PROJECT}`` argument: it paces the reads made for that "
                        "task's wait alone, and never slows the other waits.\n"
                    ),
                    "version_added": VERSION_ADDED,
                    "type": "integer",
                    "example": "120",
                    "default": str(DEFAULT_REQUESTS_PER_MINUTE_PER_PROJECT),
                },
                ALLOWED_ENDPOINTS: {
                    "description": (
                        "The API endpoints the hooks of this package may call (and so send credentials and "
                        "customer-supplied keys to), as a comma-separated list. An entry is ``loopback`` (any "
                        "loopback host, http or https, any port: the emulator) or ``SCHEME://HOST[:PORT]``, "
                        "where HOST may be ``*.DOMAIN`` and PORT ``*`` (no port: the scheme's default). An "
                        "endpoint given by an operator's ``api_endpoint``, the connection extra "
                        "``compute_api_endpoint`` or a trigger's stored kwargs that is not listed is refused "
                        "before any credentials are read. Set it where tasks and triggers run (workers and "
                        "triggerers); DAG authors cannot change it.\n"
                    ),
                    "version_added": ALLOWED_ENDPOINTS_ADDED,
                    "type": "string",
                    "example": "https://compute.googleapis.com, https://compute-backups.p.googleapis.com, loopback",
                    "default": DEFAULT_ALLOWED_ENDPOINTS,
                },
                SOURCE_IMAGE_LIMIT_WAIT_SECONDS: {
                    "description": (
                        "How long after Compute Engine refused a machine image under its per-source limit "
                        "(the insert operation failed with RESOURCE_OPERATION_RATE_EXCEEDED: one image of a "
                        "source instance every 10 minutes, 6 in 60 minutes) the task submits it again, "
                        "within its timeout, deferred or on the worker. Counted from the refusal's endTime. "
                        "The default is the 10-minute window; a refusal under the 60-minute one is answered "
                        "again and waited out again. Lower it only against an emulator that shortens the "
                        "limit.\n"
                    ),
                    "version_added": SOURCE_IMAGE_LIMIT_ADDED,
                    "type": "float",
                    "example": "600",
                    "default": str(DEFAULT_SOURCE_IMAGE_LIMIT_WAIT_SECONDS),
                },
                TRIGGERERS: {
                    "description": (
                        "How many triggerers run waits of this package at once (set it to the number of "
                        f"``airflow triggerer`` processes), so that together they keep to "
                        f"``{REQUESTS_PER_MINUTE_PER_PROJECT}``.\n"
                    ),
                    "version_added": VERSION_ADDED,
                    "type": "integer",
                    "example": "2",
                    "default": str(DEFAULT_TRIGGERERS),
                },
            },
        }
    }
