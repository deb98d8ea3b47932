"""The boot check of a restore drill: wait until the instance's serial console shows that its guest booted.

DAG files import this module at parse time, so nothing here loads Google, ``requests`` or ``aiohttp``
code. The reading and judging is :mod:`airflow_machine_images.flows.boot` on the worker and
:class:`~airflow_machine_images.triggers.boot.InstanceBootTrigger` in the triggerer, both over the one
reader of :mod:`airflow_machine_images.api.serial_console`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_machine_images import triggers
from airflow_machine_images.api.serial_console import DEFAULT_BOOT_PATTERN, DEFAULT_FAILURE_PATTERN
from airflow_machine_images.events import error_from_event
from airflow_machine_images.exceptions import failing_on_bad_input
from airflow_machine_images.flows import boot
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.links import InstanceLink
from airflow_machine_images.operators.base import DEFAULT_DEFERRABLE, ComputeEngineWaitingBaseOperator
from airflow_machine_images.validation import validate_instance_name, validate_zone
from airflow_machine_images.validation.console import validate_console_pattern, validate_serial_port
from airflow_machine_images.validation.primitives import full_match
from airflow_machine_images.validation.templates import is_templated

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineVerifyBootOperator"]

#: An instance's numeric id (the discovery documents' ``instance`` path pattern: ``[1-9][0-9]{0,19}``).
_INSTANCE_ID_PATTERN = r"[1-9][0-9]{0,19}"


class ComputeEngineVerifyBootOperator(ComputeEngineWaitingBaseOperator):
    """Wait until an instance's serial console shows a boot line; fail on a failure line or at the deadline.

    Compute Engine reports RUNNING as soon as the VM is scheduled: a broken boot disk or a kernel panic
    still reads RUNNING. This operator reads ``instances.getSerialPortOutput`` from byte 0 on, each read
    from the previous answer's ``next`` (no byte is asked for twice), and searches each console line for
    ``boot_pattern`` (and ``failure_pattern``). It fails (without Airflow retries) with the console's last
    lines in the message, cleaned of control characters and bounded, when the failure line appears or
    when no boot line has appeared by ``timeout``.

    Only reads: nothing is created, changed or deleted. Give ``instance_id`` (the restore's XCom ``id``) to
    read exactly the instance the restore made, not one that took its name since.

    .. seealso::
        https://cloud.google.com/compute/docs/troubleshooting/viewing-serial-port-output

    Returns ``{"project_id", "zone", "instance", "port", "booted", "matched_line", "console_bytes_read",
    "console_bytes_skipped", "reads"}``.

    :param instance_name: the instance's name. Templated.
    :param zone: its zone. Templated.
    :param instance_id: its numeric id (the restore's XCom ``id``); when given, the console is read by id.
        Templated.
    :param boot_pattern: a Python regular expression searched in each console line; the default covers
        systemd's multi-user target, a serial login prompt, cloud-init's final message and Windows'
        "ready to use" line (:data:`~airflow_machine_images.api.serial_console.DEFAULT_BOOT_PATTERN`). Templated.
    :param failure_pattern: a regular expression whose match fails the check at once (default: a Linux
        kernel panic or a Windows stop error), or None. Templated.
    :param port: the serial port, 1 to 4 (the boot console is port 1).
    :param deferrable: read in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between reads that brought nothing new.
    :param timeout: seconds to wait for the boot line (one deadline across deferrals).
    :param requests_per_minute_per_project: while deferred, the most reads per minute this wait may cost the
        project across all triggerers, instead of ``[machine_images] requests_per_minute_per_project``.
    :param project_id: the instance's project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "instance_name", "zone", "instance_id", "boot_pattern", "failure_pattern"
    )
    ui_color = "#e3f0d9"
    operator_extra_links = (InstanceLink(),)
    #: :class:`InstanceLink` reads the URL from the running operator.
    records_console_url = True

    def __init__(
        self,
        *,
        instance_name: str,
        zone: str,
        instance_id: str | int | None = None,
        boot_pattern: str = DEFAULT_BOOT_PATTERN,
        failure_pattern: str | None = DEFAULT_FAILURE_PATTERN,
        port: int = 1,
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 1800.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
        self.instance_name = instance_name
        self.zone = zone
        self.instance_id = instance_id
        self.boot_pattern = boot_pattern
        self.failure_pattern = failure_pattern
        self.port = validate_serial_port(port)
        # what is not templated is checked now, when the DAG is parsed
        for name, value in (("boot_pattern", boot_pattern), ("failure_pattern", failure_pattern)):
            if value is not None and not is_templated(value):
                validate_console_pattern(value, name)

    def prepare_check(self) -> boot.BootCheck:
        """Validate every (rendered) argument; no request is sent.

        :raises MachineImageValidationError: an argument breaks a rule (the message names it).
        """
        validate_instance_name(self.instance_name, "instance_name")
        validate_zone(self.zone, "zone")
        instance = self.instance_name
        if self.instance_id not in (None, ""):
            given = str(self.instance_id) if isinstance(self.instance_id, int) else self.instance_id
            instance = full_match(_INSTANCE_ID_PATTERN, given, "instance_id", "must be an instance's numeric id")
        return boot.BootCheck.checked(
            project_id=self.resolve_project_id(),
            zone=self.zone,
            instance=instance,
            boot_pattern=self.boot_pattern,
            failure_pattern=self.failure_pattern or None,
            port=self.port,
        )

    def _check_or_fail(self) -> boot.BootCheck:
        with failing_on_bad_input():
            return self.prepare_check()

    def execute(self, context: Context) -> dict[str, Any]:
        check = self._check_or_fail()
        url = InstanceLink.persist(context, self, project_id=check.project_id, zone=check.zone, name=self.instance_name)
        self.log.info("Verifying the boot of %s (console: %s)", check.where(), url)
        self.start_deadline()
        return verify_boot(self, check, extra={}, method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: the summary, or the failure the event reports.

        :param context: the task's context.
        :param event: the event of :class:`InstanceBootTrigger`.
        """
        return boot_outcome(self, self._check_or_fail(), event)


def verify_boot(
    operator: ComputeEngineWaitingBaseOperator, check: boot.BootCheck, *, extra: dict[str, Any], method_name: str
) -> dict[str, Any]:
    """Verify a boot for ``operator`` within its deadline: deferred (resuming in ``method_name``) or on the worker.

    The one driver of the boot check: :class:`ComputeEngineVerifyBootOperator` and the restore operator's
    ``verify_boot`` both call it.

    :param operator: the running operator (its deadline started).
    :param check: the check.
    :param extra: what the trigger's event hands back unchanged (identifiers only).
    :param method_name: the method the task resumes in when deferred.
    :return: the boot summary (when not deferred).
    :raises BootNotVerifiedError: the failure line, or no boot line by the deadline.
    """
    if operator.deferrable:
        trigger = triggers.InstanceBootTrigger(
            zone=check.zone,
            instance=check.instance,
            boot_pattern=check.boot_pattern,
            failure_pattern=check.failure_pattern,
            port=check.port,
            start=0,
            **operator.trigger_settings(check.project_id, extra),
        )
        operator.defer_to(trigger, f"the serial console of {check.where()} shows a boot line", method_name)
    return boot.wait_for_boot(
        operator.hook, check, deadline=operator._deadline, poll_interval=operator.poll_interval, log=operator.log
    )


def boot_outcome(
    operator: ComputeEngineWaitingBaseOperator, check: boot.BootCheck, event: dict[str, Any]
) -> dict[str, Any]:
    """The boot summary a trigger event reports, or the error it reports raised.

    :param operator: the resumed operator (for its log).
    :param check: the check.
    :param event: the event of :class:`InstanceBootTrigger`.
    """
    if event.get("status") != "success":
        raise error_from_event(event)
    operator.log.info("%s", event.get("message"))
    return boot.summary_from_event(check, event)
