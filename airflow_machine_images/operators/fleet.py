"""Fleet operators: select instances by label across zones, and check each has a recent machine image.

DAG files import this module at parse time: like :mod:`airflow_machine_images.operators.machine_images` it loads no
Google, ``requests`` or ``aiohttp`` code (the hook is built when a task runs). The selection rules are
in :mod:`airflow_machine_images.planning.fleet`, the coverage rules in :mod:`airflow_machine_images.planning.coverage`;
the XCom values are built in :mod:`airflow_machine_images.results`; here are the arguments and the paged calls.
"""

from __future__ import annotations

import ast
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import timezone

from airflow_machine_images import metrics
from airflow_machine_images.api.paging import MAX_PAGES, PageWalk
from airflow_machine_images.exceptions import (
    BackupCoverageError,
    MachineImageValidationError,
    PartialListingError,
    failing_on_bad_input,
)
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.operators.base import ComputeEngineMachineImageBaseOperator
from airflow_machine_images.planning.coverage import CoverageRow, coverage_rows, format_table
from airflow_machine_images.planning.fleet import FleetListing, InstanceSelector
from airflow_machine_images.results import coverage_summary
from airflow_machine_images.validation import (
    split_label_selector,
    validate_bool,
    validate_labels,
    validate_positive_int,
    validate_project_id,
)
from airflow_machine_images.validation.primitives import show_value
from airflow_machine_images.validation.templates import all_literal, is_templated

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook
    from airflow_machine_images.logs import TaskLogger

__all__ = ["ComputeEngineListInstancesOperator", "ComputeEngineMachineImageCoverageCheckOperator", "list_fleet"]

#: ``maxResults`` of a list page: at most 500 (discovery documents).
MAX_PAGE_SIZE = 500


def _send_coverage_metrics(project_id: str, rows: list[CoverageRow], *, gaps: int) -> None:
    """The coverage gaps of a check, and each checked instance's newest image age (:mod:`~.metrics`).

    :param project_id: the project whose instances were checked.
    :param rows: the coverage rows.
    :param gaps: how many instances are ``stale`` or ``missing``.
    """
    metrics.coverage_gaps(project_id, gaps)
    for row in rows:
        if row.age_seconds is not None:
            project, zone, name = row.instance.split("/")[1::2]
            metrics.newest_image_age(project, zone, name, row.age_seconds)


def _page_size(value: object) -> int:
    size = validate_positive_int(value, "page_size")
    if size > MAX_PAGE_SIZE:
        raise MachineImageValidationError(
            "page_size", f"must be at most {MAX_PAGE_SIZE} (the API's maxResults)", str(size)
        )
    return size


def list_fleet(
    hook: ComputeEngineMachineImageHook, project_id: str, selector: InstanceSelector, page_size: int, log: TaskLogger
) -> FleetListing:
    """Walk ``instances.aggregatedList`` of a project: one call per page, no per-instance reads.

    The labels are not sent to the server: every instance of the project is listed and the labels are
    matched here, as gcloud matches them (``InstanceSelector.server_filter`` in
    :mod:`airflow_machine_images.planning.fleet`), so an instance a label-filtered answer would leave out
    is still selected; only the user's ``filter`` goes to the server.

    :param hook: the sync hook.
    :param project_id: the project (validated).
    :param selector: what is selected.
    :param page_size: instances per page (``maxResults``).
    :param log: the task's logger.
    :raises PartialListingError: a scope that may hold selected instances could not be read.
    """
    listing = FleetListing(project_id=project_id, selector=selector)
    walk = PageWalk(what="instances.aggregatedList", max_pages=MAX_PAGES)
    server_filter = selector.server_filter()
    if selector.filter_names_labels:
        log.warning(
            "The filter %r has a labels. term: the server applies it, and an instance it wrongly leaves out cannot "
            "be noticed; give labels as label_selector, which is matched on the unfiltered listing",
            selector.filter,
        )
    while not walk.done:
        call = hook.api.aggregated_list_instances(
            project_id, filter_=server_filter, max_results=page_size, page_token=walk.token
        )
        page = hook.execute_call(call)
        walk.take({key: value for key, value in page.items() if key != "items"})  # tokens, cycles, page cap
        listing.take(page)
    incomplete = listing.blocking_incomplete()
    if incomplete:
        raise PartialListingError(
            f"instances.aggregatedList of project {project_id} could not read everything "
            f"({'; '.join(f'{scope}: {why}' for scope, why in sorted(incomplete.items()))}); selected instances "
            "there would be missing, so nothing is decided on this answer (Airflow retries the task)"
        )
    log.info(
        "Selected %d instance(s) of project %s (%s) in %d page(s)",
        len(listing.instances),
        project_id,
        selector.describe(),
        listing.pages,
    )
    return listing


class _FleetSelectionMixin:
    """The arguments that select a fleet, shared by the list and coverage operators."""

    label_selector: dict[str, str] | str | None
    filter: str | None
    zones: list[str] | None

    def _check_selection_now(self) -> None:
        """Check the selector when the DAG is parsed, unless it is a template (then: before any request)."""
        if all_literal(self.label_selector, self.filter, self.zones):
            self._selector()

    def _selector(self) -> InstanceSelector:
        return InstanceSelector.of(self.label_selector, self.filter, self.zones)


class ComputeEngineListInstancesOperator(_FleetSelectionMixin, ComputeEngineMachineImageBaseOperator):
    """List a project's instances selected by labels and/or a list filter, in every zone or some.

    One ``instances.aggregatedList`` call per page (all zones at once), no per-instance reads. The
    labels are matched by this operator on an answer the server did not narrow by them (gcloud's
    practice: server-side label matching "is currently problematic", its filter rewriter says), so an
    instance the server would leave out of a label-filtered answer is still selected; ``filter`` goes to
    the server as given. A zone the API
    reports ``UNREACHABLE`` (or any answer that says it left results out) fails the task with
    :class:`~airflow_machine_images.exceptions.PartialListingError` naming the zone, rather than
    return a fleet with machines silently missing; Airflow retries it.

    Returns a list of ``{"project_id", "zone", "name", "source_instance", "labels", "status"}``
    (``source_instance`` is ``projects/P/zones/Z/instances/I``), sorted by zone and name. To back them
    up with a mapped insert, turn them into the insert operator's kwargs with
    :func:`airflow_machine_images.planning.fleet.backup_kwargs` (image names per run; ``zone``/``status`` are no
    insert argument, and the images' project is the one given to ``.partial()``).

    :param label_selector: instances must carry all of these labels: a dict, or the text
        ``"key=value,key2=value2"``. Templated.
    :param filter: a Compute Engine list filter on the Instance resource (``status = RUNNING``). Templated.
    :param zones: only instances of these zones (default: every zone); rendered text may list them
        comma-separated. Templated.
    :param page_size: instances per page (1-500).
    :param project_id: the project listed; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields("label_selector", "filter", "zones")
    template_fields_renderers = {"label_selector": "json"}
    ui_color = "#e0f0d9"

    def __init__(
        self,
        *,
        label_selector: dict[str, str] | str | None = None,
        filter: str | None = None,
        zones: list[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.label_selector = label_selector
        self.filter = filter
        self.zones = zones
        self.page_size = _page_size(page_size)
        self._check_selection_now()

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with failing_on_bad_input():
            selector = self._selector()
            project_id = self.resolve_project_id()
        return list_fleet(self.hook, project_id, selector, self.page_size, self.log).selected()


def _max_age(value: object) -> timedelta:
    """``max_age`` as a positive timedelta: a timedelta, seconds, or the rendered text of seconds."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise MachineImageValidationError(
                "max_age", "must be a timedelta or a number of seconds", show_value(value)
            ) from None
    if isinstance(value, bool) or not isinstance(value, (timedelta, int, float)):
        raise MachineImageValidationError("max_age", "must be a timedelta or a number of seconds", show_value(value))
    age = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if age <= timedelta(0):
        raise MachineImageValidationError("max_age", "must be a positive duration", show_value(value))
    return age


def _fleet_backup_result(value: object) -> dict[str, Any]:
    """A fleet backup operator's result (``{"summary", "instances"}``), as given or rendered to text.

    :param value: the result, or its JSON text.
    :raises MachineImageValidationError: it is not shaped like one.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text)
        except ValueError:
            try:
                value = ast.literal_eval(text)  # a dict rendered with str()
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = text
    rows = value.get("instances") if isinstance(value, dict) else None
    summary = value.get("summary") if isinstance(value, dict) else None
    if (
        not isinstance(rows, list)
        or not isinstance(summary, dict)
        or not all(isinstance(row, dict) and isinstance(row.get("instance"), str) for row in rows)
    ):
        raise MachineImageValidationError(
            "fleet_backup", "must be a fleet backup operator's result ({'summary', 'instances'})", show_value(value)
        )
    validate_project_id(summary.get("project_id"), "fleet_backup.summary.project_id")
    return {"summary": summary, "instances": rows}


class ComputeEngineMachineImageCoverageCheckOperator(_FleetSelectionMixin, ComputeEngineMachineImageBaseOperator):
    """Check that every selected instance has a READY machine image younger than ``max_age``.

    Selects instances as :class:`ComputeEngineListInstancesOperator` does (same arguments, same
    paged ``instances.aggregatedList``, without a server-side label filter: the labels are matched here,
    so the check does not share the blind spot of a label-filtered listing), lists the machine images of
    the backup project (one paged
    ``machineImages.list``, narrowed by ``image_label_selector``), and matches each image to its
    source instance by project id, zone and name. Logs an aligned table (instance, status, newest
    READY image, age, size), pushes it as XCom ``coverage`` and returns it; fails naming every
    instance whose newest READY image is older than ``max_age`` (``stale``) or that has none
    (``missing``), with :class:`~airflow_machine_images.exceptions.BackupCoverageError` (no retries).

    Returns ``{"project_id", "backup_project_id", "max_age_seconds", "checked", "ok", "stale",
    "missing", "rows"}``; each row is ``{"instance", "status", "newest_image", "created",
    "age_seconds", "age", "size_bytes"}``.

    After a :class:`~airflow_machine_images.operators.ComputeEngineFleetBackupOperator`, pass its result
    as ``fleet_backup`` (``fleet_backup=backup.output``): the instances checked are then the ones that
    run set out to back up (no listing), in its project unless ``backup_project_id`` says otherwise, so
    an instance it failed or deferred is named ``missing`` or ``stale`` unless an older image covers it.

    :param max_age: the oldest a newest image may be: a timedelta or seconds. Templated.
    :param fleet_backup: a fleet backup operator's result (its XCom), instead of a selection. Templated.
    :param label_selector: instances must carry all of these labels. Templated.
    :param filter: a Compute Engine list filter on the Instance resource. Templated.
    :param zones: only instances of these zones (default: every zone); rendered text may list them
        comma-separated. Templated.
    :param backup_project_id: the project holding the images (default: ``project_id``). Templated.
    :param image_label_selector: count only images carrying these labels (e.g. this DAG's). Templated.
    :param allow_empty: succeed when no instance is selected (default: fail, a selector that selects
        nothing is more likely wrong than a fleet that is empty).
    :param page_size: results per page of each list (1-500).
    :param project_id: the instances' project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields(
        "label_selector", "filter", "zones", "backup_project_id", "image_label_selector", "max_age", "fleet_backup"
    )
    template_fields_renderers = {"label_selector": "json", "image_label_selector": "json"}
    ui_color = "#f4ecd0"

    def __init__(
        self,
        *,
        max_age: timedelta | float | str,
        fleet_backup: dict[str, Any] | str | None = None,
        label_selector: dict[str, str] | str | None = None,
        filter: str | None = None,
        zones: list[str] | None = None,
        backup_project_id: str | None = None,
        image_label_selector: dict[str, str] | str | None = None,
        allow_empty: bool = False,
        page_size: int = MAX_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_age = max_age
        self.fleet_backup = fleet_backup
        self.label_selector = label_selector
        self.filter = filter
        self.zones = zones
        self.backup_project_id = backup_project_id
        self.image_label_selector = image_label_selector
        self.allow_empty = validate_bool(allow_empty, "allow_empty")
        self.page_size = _page_size(page_size)
        if fleet_backup is not None and any(v is not None for v in (label_selector, filter, zones)):
            raise MachineImageValidationError(
                "fleet_backup", "give a fleet backup's result, or label_selector/filter/zones, not both"
            )
        self._check_selection_now()
        if not is_templated(max_age):
            _max_age(max_age)
        if not is_templated(image_label_selector):
            self._image_labels()

    def _image_labels(self) -> dict[str, str]:
        value = self.image_label_selector
        if isinstance(value, str):
            value = split_label_selector(value, "image_label_selector")
        return validate_labels(value if value is not None else {}, "image_label_selector")

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_on_bad_input():
            selector = self._selector()
            max_age = _max_age(self.max_age)
            image_labels = self._image_labels()
            project_id = self.resolve_project_id()
            backed_up = None if self.fleet_backup is None else _fleet_backup_result(self.fleet_backup)
            default_backup = backed_up["summary"]["project_id"] if backed_up else project_id
            backup_project = validate_project_id(self.backup_project_id or default_backup, "backup_project_id")
        if backed_up is not None:
            fleet = [{"source_instance": row["instance"]} for row in backed_up["instances"]]
            what = f"the {len(fleet)} instance(s) of fleet backup run {backed_up['summary']['run_label']}"
        else:
            fleet = list_fleet(self.hook, project_id, selector, self.page_size, self.log).selected()
            what = selector.describe()
        if not fleet and not self.allow_empty:
            raise BackupCoverageError(
                f"No instance of project {project_id} is selected ({what}): nothing to check; "
                "fix the selector, or pass allow_empty=True"
            )
        image_filter = " AND ".join(f'(labels.{key} = "{value}")' for key, value in sorted(image_labels.items()))
        images = [
            image
            for image in self.hook.list_machine_images(project_id=backup_project, filter_=image_filter or None)
            if all((image.get("labels") or {}).get(key) == value for key, value in image_labels.items())
        ]
        rows = coverage_rows(fleet, images, now=timezone.utcnow(), max_age=max_age)
        self.log.info(
            "Backup coverage of %d instance(s) of %s by images in %s (max age %s):\n%s",
            len(rows),
            project_id,
            backup_project,
            max_age,
            format_table(rows),
        )
        result = coverage_summary(project_id=project_id, backup_project_id=backup_project, max_age=max_age, rows=rows)
        stale, missing = result["stale"], result["missing"]
        _send_coverage_metrics(project_id, rows, gaps=len(stale) + len(missing))
        context["ti"].xcom_push(key="coverage", value=result)
        if stale or missing:
            parts = []
            if stale:
                parts.append(f"{len(stale)} with a newest READY image older than {max_age}: {', '.join(stale)}")
            if missing:
                parts.append(f"{len(missing)} without any READY image in {backup_project}: {', '.join(missing)}")
            raise BackupCoverageError(f"Backup coverage check failed: {'; '.join(parts)}")
        return result
