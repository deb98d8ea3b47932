"""Operator extra links to the Cloud Console.

The worker stores the finished URL in XCom under the link's key before it waits or defers, so the
button works while the task is still running, and the API server needs no code of ours to show it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context, TaskInstanceKey

CONSOLE_URL = "https://console.cloud.google.com"


def machine_image_console_url(project_id: str, name: str) -> str:
    """The Cloud Console page of one machine image.

    :param project_id: the image's project.
    :param name: the image name.
    """
    return f"{CONSOLE_URL}/compute/machineImages/details/{quote(name, safe='')}?project={quote(project_id, safe='')}"


def instance_console_url(project_id: str, zone: str, name: str) -> str:
    """The Cloud Console page of one VM instance.

    :param project_id: the instance's project.
    :param zone: its zone.
    :param name: its name.
    """
    return (
        f"{CONSOLE_URL}/compute/instancesDetail/zones/{quote(zone, safe='')}/instances/{quote(name, safe='')}"
        f"?project={quote(project_id, safe='')}"
    )


class _ConsoleLink(BaseOperatorLink):
    """A Cloud Console link whose URL the worker stores (XCom and the running operator) before it waits."""

    name: ClassVar[str] = "Console"
    key: ClassVar[str] = "console_url"

    @property
    def xcom_key(self) -> str:
        """The XCom key the URL is stored under."""
        return self.key

    @classmethod
    def _store(cls, context: Context, operator: BaseOperator, url: str) -> str:
        setattr(operator, _RECORDED, url)
        context["ti"].xcom_push(key=cls.key, value=url)
        return url

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL, or an empty string while there is none.

        When a try ends, Airflow asks the running operator's links for their URLs and stores them:
        the operator knows its URL (or that it has none yet, when it failed before naming the image),
        so no XCom is read and no "XCom not found" error is logged. Elsewhere the stored URL is read.

        :param operator: the operator.
        :param ti_key: the task instance.
        """
        if getattr(operator, "records_console_url", False):
            recorded = getattr(operator, _RECORDED, "")
            return recorded if isinstance(recorded, str) else ""
        value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        return value if isinstance(value, str) else ""


class MachineImageLink(_ConsoleLink):
    """Link to the machine image's page in the Cloud Console."""

    name: ClassVar[str] = "Machine Image"
    key: ClassVar[str] = "machine_image_console_url"

    @classmethod
    def persist(cls, context: Context, operator: BaseOperator, *, project_id: str, name: str) -> str:
        """Store the URL for this task instance (and on the running operator); return it.

        :param context: the task's context.
        :param operator: the running operator (Airflow asks :meth:`get_link` about it when the try ends).
        :param project_id: the image's project.
        :param name: the image name.
        """
        return cls._store(context, operator, machine_image_console_url(project_id, name))


class InstanceLink(_ConsoleLink):
    """Link to the VM instance's page in the Cloud Console (the restore operator's new instance)."""

    name: ClassVar[str] = "VM Instance"
    key: ClassVar[str] = "instance_console_url"

    @classmethod
    def persist(cls, context: Context, operator: BaseOperator, *, project_id: str, zone: str, name: str) -> str:
        """Store the URL for this task instance (and on the running operator); return it.

        :param context: the task's context.
        :param operator: the running operator.
        :param project_id: the instance's project.
        :param zone: its zone.
        :param name: its name.
        """
        return cls._store(context, operator, instance_console_url(project_id, zone, name))


#: The attribute :meth:`_ConsoleLink._store` leaves the URL in, on the running operator.
_RECORDED = "_machine_image_console_url"
