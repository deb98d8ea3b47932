"""The fleet backup operator: a machine image of every selected instance, in one task and one deferral.

Mapped inserts (:class:`~airflow_machine_images.operators.ComputeEngineInsertMachineImageOperator` with
``.expand``) show every instance in the grid but cost two task starts per image and stop at
``[core] max_map_length`` (1,024); this operator backs up thousands of instances in one task. The
create rules are the create flow's (:mod:`airflow_machine_images.flows.create`, per instance, through
:mod:`airflow_machine_images.flows.fleet_backup`); the planning and the policy are pure
(:mod:`airflow_machine_images.planning.fleet_backup`); the XCom is built in :mod:`airflow_machine_images.results`.

DAG files import this module at parse time: no Google, ``requests`` or ``aiohttp`` code is loaded here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images import triggers
from airflow_machine_images.api.schema import machine_image_schemas
from airflow_machine_images.assets import record_fleet_outlet_events
from airflow_machine_images.bodies.labels import OWNER_LABEL, default_labels, merge_default_labels
from airflow_machine_images.bodies.machine_image import build_machine_image_body
from airflow_machine_images.compat import AirflowFailException
from airflow_machine_images.events import EVENT_TIMEOUT, error_from_event
from airflow_machine_images.exceptions import ComputeEngineError, MachineImageValidationError, failing_on_bad_input
from airflow_machine_images.flows import fleet_backup as flow
from airflow_machine_images.flows.fleet_backup import FleetBackup
from airflow_machine_images.flows.request_ids import TaskInstanceIdentity, task_instance_key
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.operators.base import DEFAULT_DEFERRABLE, ComputeEngineWaitingBaseOperator, context_is_retry
from airflow_machine_images.operators.fleet import MAX_PAGE_SIZE, _FleetSelectionMixin, _page_size, list_fleet
from airflow_machine_images.planning.fleet_backup import (
    DEFAULT_IMAGE_NAME,
    FAIL_ON_CHOICES,
    FleetPolicy,
    check_image_name_template,
    plan_backups,
    read_instances,
)
from airflow_machine_images.results import fleet_backup_summary
from airflow_machine_images.validation import (
    validate_bool,
    validate_choice,
    validate_labels,
    validate_optional_bool,
    validate_positive_int,
    validate_positive_number,
    validate_project_id,
)
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.templates import is_templated

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineFleetBackupOperator"]

#: The XCom (of the task instance itself) holding the per-instance table across deferrals.
TABLE_XCOM_KEY: Final = "fleet_backup_table"
#: The XCom holding the result, pushed also when the policy fails the task (the coverage check reads it).
RESULT_XCOM_KEY: Final = "fleet_backup"
#: Inserts running at once by default: under a project's concurrent-operations quota in most projects
#: (an insert refused with ``CONCURRENT_OPERATIONS_QUOTA_EXCEEDED`` is waited out by the hook anyway).
DEFAULT_MAX_IN_FLIGHT: Final = 2000


def _fraction(value: object) -> float:
    number = validate_positive_number(value, "min_success_fraction")
    if number > 1:
        raise MachineImageValidationError("min_success_fraction", "must be above 0 and at most 1", show_value(value))
    return number


class ComputeEngineFleetBackupOperator(_FleetSelectionMixin, ComputeEngineWaitingBaseOperator):
    """Make a machine image of every selected instance in one task: thousands, with one deferral.

    The instances are the list operator's selection (``label_selector``, ``filter``, ``zones``: one paged
    ``instances.aggregatedList``) or an explicit list (``instances``: references, or the list operator's
    XCom, e.g. ``instances=select.output``). Each instance's insert carries a requestId derived from the
    task instance and the instance, so an Airflow retry or a killed worker replays what the server
    accepted and never makes a second image; instances whose image of this run is READY are not
    touched again. Every image carries this task instance's ``airflow-ti`` label, by which the one
    trigger waits (its kwargs stay the same size whatever the fleet's) and the task reads the outcomes.

    Failed instances are retried by cause like single inserts: within one try each instance gets its
    one fresh submission, a replay of an earlier try's failure moves on to the next requestId, and a
    retry of the task resubmits only the instances not backed up. An instance refused by the per-source
    limit (``RESOURCE_OPERATION_RATE_EXCEEDED``: at most one image per source every 10 minutes, 6 an hour)
    is ``deferred``: it is not retried into the limit, the next run backs it up.

    Returns (and pushes as XCom ``fleet_backup``, also when the policy fails the task)
    ``{"summary": {...}, "instances": [{"instance", "image", "status", "error", "replayed"}, ...]}``
    (:func:`~airflow_machine_images.results.fleet_backup_summary`). Declare an ``AssetAlias`` among the
    outlets to get one asset event per image (the ``gce-machine-image`` asset of its source instance);
    ``gce-machine-image`` assets among the outlets get one event with the run's counts.

    :param instances: the instances to back up: references (``ZONE/NAME``, ``projects/P/zones/Z/instances/I``,
        a URL) or the list operator's dicts. Templated (an ``XComArg`` works as is).
    :param label_selector: select instances carrying all of these labels, as the list operator does. Templated.
    :param filter: a Compute Engine list filter on the Instance resource. Templated.
    :param zones: only instances of these zones (default: every zone). Templated.
    :param page_size: instances per page of the listing (1-500).
    :param allow_empty: succeed when nothing is selected (default: fail; a selector that selects nothing
        is more likely wrong than an empty fleet).
    :param image_name: the image name per instance: text with ``{instance}``, ``{zone}``, ``{project}``,
        ``{hash}`` (6 hex digits of the instance's path) and ``{run}`` (8 hex digits of this task
        instance's key); the instance name is cut to fit 63 characters. Templated (Jinja first:
        ``"{instance}-{{ ds_nodash }}-{hash}"``).
    :param backup_project_id: the project the images are made in (default: ``project_id``). Templated.
    :param labels: labels for every image; the ``airflow-ti`` label is the run's and cannot be set. Templated.
    :param description: the images' description. Templated.
    :param storage_locations: Cloud Storage location of the images, e.g. ``["us"]``. Templated.
    :param guest_flush: ask each guest OS to flush buffers first.
    :param max_in_flight: the most inserts running at once; more wait for a refill round.
    :param fail_on: ``"any"``: any failed instance fails the task; ``"fraction"``: the task fails when
        the share backed up (among succeeded and failed) is below ``min_success_fraction``.
    :param min_success_fraction: see ``fail_on`` (0 < x <= 1).
    :param deferrable: wait in the triggerer (one deferral per refill round) instead of on the worker.
    :param poll_interval: seconds between looks at the run's images.
    :param timeout: seconds the whole backup may take; instances not READY by then fail.
    :param requests_per_minute_per_project: while deferred, the most requests per minute this wait may
        cost the project across all triggerers (None: ``[machine_images] requests_per_minute_per_project``).
    :param project_id: the instances' project for a selection or ``ZONE/NAME`` references; defaults to
        the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator). Templated.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "instances",
        "label_selector",
        "filter",
        "zones",
        "image_name",
        "backup_project_id",
        "labels",
        "description",
        "storage_locations",
    )
    template_fields_renderers = {"label_selector": "json", "labels": "json", "instances": "json"}
    ui_color = "#d9e8fb"

    def __init__(
        self,
        *,
        instances: Sequence[Any] | str | None = None,
        label_selector: dict[str, str] | str | None = None,
        filter: str | None = None,
        zones: list[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        allow_empty: bool = False,
        image_name: str = DEFAULT_IMAGE_NAME,
        backup_project_id: str | None = None,
        labels: dict[str, str] | None = None,
        description: str | None = None,
        storage_locations: list[str] | None = None,
        guest_flush: bool | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        fail_on: str = "any",
        min_success_fraction: float = 1.0,
        deferrable: bool = DEFAULT_DEFERRABLE,
        poll_interval: float = 10.0,
        timeout: float = 7200.0,
        requests_per_minute_per_project: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=poll_interval,
            timeout=timeout,
            requests_per_minute_per_project=requests_per_minute_per_project,
            **kwargs,
        )
        self.instances = instances
        self.label_selector = label_selector
        self.filter = filter
        self.zones = zones
        self.page_size = _page_size(page_size)
        self.allow_empty = validate_bool(allow_empty, "allow_empty")
        self.image_name = image_name
        self.backup_project_id = backup_project_id
        self.labels = labels
        self.description = description
        self.storage_locations = storage_locations
        self.guest_flush = validate_optional_bool(guest_flush, "guest_flush")
        self.max_in_flight = validate_positive_int(max_in_flight, "max_in_flight")
        self.policy = FleetPolicy(validate_choice(fail_on, "fail_on", FAIL_ON_CHOICES), _fraction(min_success_fraction))
        self._check_arguments_now()

    # ------------------------------------------------------------------ arguments

    def _check_arguments_now(self) -> None:
        """Check what is not templated, or not yet rendered, when the DAG is parsed."""
        selecting = any(value is not None for value in (self.label_selector, self.filter, self.zones))
        if self.instances is not None and selecting:
            raise MachineImageValidationError(
                "instances", "give instances, or label_selector/filter/zones to select them, not both"
            )
        if self.instances is None and not selecting:
            raise MachineImageValidationError(
                "instances", "give the instances, or label_selector/filter/zones to select them (none given)"
            )
        if selecting:
            self._check_selection_now()
        if isinstance(self.instances, (list, tuple)) and not is_templated(str(self.instances)):
            read_instances(self.instances, default_project="placeholder-project")
        if not is_templated(self.image_name):
            check_image_name_template(self.image_name)
        if not is_templated(self.labels):
            self._labels({})

    def _labels(self, defaults: dict[str, str]) -> dict[str, str]:
        """The user's labels and the defaults; the run's ``airflow-ti`` label always among them.

        :param defaults: the default labels of the task instance (empty when checked at parse time).
        """
        given = validate_labels(self.labels if self.labels is not None else {}, "labels")
        if OWNER_LABEL in given:
            raise MachineImageValidationError(
                "labels", f"must not set {OWNER_LABEL!r}: it is the run's label, by which its images are found"
            )
        merged = merge_default_labels(given, defaults)
        if defaults and OWNER_LABEL not in merged:
            raise MachineImageValidationError("labels", f"leave room for the {OWNER_LABEL!r} label (at most 63)")
        return merged

    def _plan(self, context: Context) -> FleetBackup:
        """Validate every argument, select the instances (a listing, for a selection), plan the run.

        :param context: the task's context.
        """
        with failing_on_bad_input():
            identity = TaskInstanceIdentity.of(context["ti"])
            run_label = task_instance_key(identity)
            project_id = self.resolve_project_id()
            backup_project = validate_project_id(self.backup_project_id or project_id, "backup_project_id")
            template = check_image_name_template(self.image_name)
            labels = self._labels(default_labels(identity))
            selector = self._selector() if self.instances is None else None
            sources = None if selector is not None else read_instances(self.instances, default_project=project_id)
        if selector is not None:
            listed = list_fleet(self.hook, project_id, selector, self.page_size, self.log).selected()
            sources = read_instances(listed, default_project=project_id)
        assert sources is not None
        if not sources and not self.allow_empty:
            raise AirflowFailException("No instance to back up: fix the selection, or pass allow_empty=True")
        with failing_on_bad_input():
            items = plan_backups(sources, template, run_label[:8])
            body = self._body(items[0] if items else None, labels)
        self.log.info("Backing up %d instance(s) into project %s (run label %s)", len(items), backup_project, run_label)
        return FleetBackup.plan(
            project_id=backup_project, run_label=run_label, identity=identity, body=body, items=items
        )

    def _body(self, first: Any, labels: dict[str, str]) -> dict[str, Any]:
        """The shared MachineImage body, checked against the schema once (for the first instance).

        :param first: the first planned instance (None: nothing to back up).
        :param labels: the images' labels.
        """
        if first is None:
            return {}
        body = build_machine_image_body(
            name=first.image,
            source_instance=first.source,
            description=self.description,
            labels=labels,
            storage_locations=self.storage_locations,
            guest_flush=self.guest_flush,
            machine_image_encryption_key=None,
            source_disk_encryption_keys=None,
            machine_image_params=None,
            body=None,
            schemas=machine_image_schemas(self.api_version),
        )
        return {key: value for key, value in body.items() if key not in ("name", "sourceInstance")}

    # ------------------------------------------------------------------ running

    def execute(self, context: Context) -> dict[str, Any]:
        fleet = self._plan(context)
        self.start_deadline()
        flow.settle_ready_images(self.hook, fleet, self.log)  # backed up earlier in this run: not touched again
        flow.submit(self.hook, fleet, limit=self.max_in_flight, is_retry=context_is_retry(context), log=self.log)
        return self._go_on(context, fleet)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the triggerer: read the outcomes, refill, and defer again or finish.

        :param context: the task's context.
        :param event: the :class:`FleetBackupTrigger` event.
        """
        if event.get("status") != "success" and event.get("reason") != EVENT_TIMEOUT:
            raise error_from_event(event)  # bad stored arguments, or the API kept failing: a retry replays
        ti = context["ti"]
        kept = ti.xcom_pull(task_ids=self.task_id, key=TABLE_XCOM_KEY)
        if not isinstance(kept, dict):
            raise ComputeEngineError(f"The fleet backup's table (XCom {TABLE_XCOM_KEY!r}) is gone; a retry starts over")
        fleet = FleetBackup.from_json(kept, TaskInstanceIdentity.of(ti))
        self.start_deadline(event)
        is_retry = context_is_retry(context)
        flow.read_outcomes(self.hook, fleet, is_retry=is_retry, log=self.log)
        flow.submit(
            self.hook, fleet, limit=self.max_in_flight - len(fleet.in_flight()), is_retry=is_retry, log=self.log
        )
        return self._go_on(context, fleet)

    def _go_on(self, context: Context, fleet: FleetBackup) -> dict[str, Any]:
        """Defer (or wait here) while anything is in flight or still to submit; then the result.

        :param context: the task's context.
        :param fleet: the run.
        """
        is_retry = context_is_retry(context)
        while fleet.unsent() and not fleet.in_flight():  # everything finished on arrival: go on submitting
            flow.submit(self.hook, fleet, limit=self.max_in_flight, is_retry=is_retry, log=self.log)
        if (fleet.in_flight() or fleet.unsent()) and self._deadline.remaining() > 0:
            if self.deferrable:
                self._defer_run(context, fleet)
            flow.wait_on_worker(
                self.hook,
                fleet,
                max_in_flight=self.max_in_flight,
                poll_interval=self.poll_interval,
                deadline=self._deadline.at,
                is_retry=is_retry,
                log=self.log,
            )
        flow.give_up_at_deadline(fleet, self.log)
        return self._finish(context, fleet)

    def _defer_run(self, context: Context, fleet: FleetBackup) -> None:
        """Keep the table (an XCom of this task instance) and hand the wait to one trigger.

        :param context: the task's context.
        :param fleet: the run.
        """
        fleet.deferrals += 1
        context["ti"].xcom_push(key=TABLE_XCOM_KEY, value=fleet.to_json())
        refill = max(0, self.max_in_flight * 3 // 4) if fleet.unsent() else 0
        trigger = triggers.FleetBackupTrigger(
            run_label=fleet.run_label,
            expected=fleet.expected_images(),
            pending_at_most=refill,
            **self.trigger_settings(fleet.project_id, {"deferral": fleet.deferrals}),
        )
        in_flight = len(fleet.in_flight())
        self.defer_to(trigger, f"the {in_flight} image(s) in flight of run {fleet.run_label} are made")

    def _finish(self, context: Context, fleet: FleetBackup) -> dict[str, Any]:
        """The result; asset events per image; the policy's verdict (a failure Airflow retries).

        :param context: the task's context.
        :param fleet: the run, every instance decided.
        """
        rows = [row.row() for row in fleet.rows()]
        counts = {status: sum(1 for row in rows if row["status"] == status) for status in ("succeeded", "failed")}
        verdict = self.policy.verdict(counts)
        result = fleet_backup_summary(
            project_id=fleet.project_id,
            run_label=fleet.run_label,
            rows=rows,
            verdict=verdict,
            submissions=fleet.submissions,
            deferrals=fleet.deferrals,
        )
        summary = result["summary"]
        self.log.info(
            "Run %s: %d instance(s): %d succeeded, %d failed, %d deferred to the next run "
            "(%d inserts sent, %d deferral(s))",
            fleet.run_label,
            summary["instances"],
            summary["succeeded"],
            summary["failed"],
            summary["deferred"],
            fleet.submissions,
            fleet.deferrals,
        )
        for row in rows:
            if row["status"] != "succeeded":
                self.log.warning("%s %s: %s (image %s)", row["instance"], row["status"], row["error"], row["image"])
        ti = context["ti"]
        ti.xcom_push(key=RESULT_XCOM_KEY, value=result)
        if fleet.deferrals:
            ti.xcom_push(key=TABLE_XCOM_KEY, value=None)  # the table is no longer needed
        record_fleet_outlet_events(context, self.outlets, result)
        if verdict:
            failed = ", ".join(summary["failed_instances"][:20])
            more = len(summary["failed_instances"]) - 20
            raise ComputeEngineError(
                f"Fleet backup run {fleet.run_label}: {verdict}: {failed}"
                + (f" and {more} more" if more > 0 else "")
                + "; a retry of the task resubmits only the instances not backed up"
            )
        return result
