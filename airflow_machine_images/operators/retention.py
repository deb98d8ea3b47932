"""Pruning machine images by a retention policy: count, age and grandfather-father-son rules per source instance.

The plan is pure (:mod:`airflow_machine_images.planning.retention`); each delete goes through the one
delete flow (:mod:`airflow_machine_images.flows.delete`): the image is read again, checked against the
entry it was planned on (id, status, selector, creation time), and deleted by the id read. A delete the
server's answer would have to submit again (a replayed failure, a resource that did not go) is never
submitted again without planning again: that image is skipped, and the next run decides on fresh data.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, timezone

from airflow_machine_images.api.list_warnings import ListWarning, describe_all, partial_warnings
from airflow_machine_images.exceptions import (
    ChangedSinceListedError,
    ComputeEngineError,
    ComputeEngineRetentionError,
    MachineImageValidationError,
    PartialListingError,
    ResubmissionNeeded,
    failing_on_bad_input,
)
from airflow_machine_images.flows import delete
from airflow_machine_images.flows.delete import DeleteRequest
from airflow_machine_images.flows.machine_image import MachineImageDeleteTarget
from airflow_machine_images.flows.request_ids import RequestIds, TaskInstanceIdentity
from airflow_machine_images.hooks.connection import connection_template_fields
from airflow_machine_images.operators.base import ComputeEngineMachineImageBaseOperator, context_is_retry
from airflow_machine_images.planning.gfs import KeepCounts
from airflow_machine_images.planning.retention import (
    RetentionPlan,
    RetentionPolicy,
    changed_since_listed,
    plan_retention,
)
from airflow_machine_images.results import retention_summary
from airflow_machine_images.validation import (
    coerce_rendered_bool,
    split_label_selector,
    validate_bool,
    validate_positive_int,
    validate_positive_number,
)
from airflow_machine_images.validation.templates import is_templated

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["ComputeEngineMachineImageRetentionOperator"]


class ComputeEngineMachineImageRetentionOperator(ComputeEngineMachineImageBaseOperator):
    """Prune old machine images by a retention policy: count, age, and grandfather-father-son rules.

    Lists the project's images matching the selector (server-side filter, every page), groups them
    by source instance, and keeps, of each source's READY images, the newest ``keep_last``, the newest
    of each of the ``keep_daily`` / ``keep_weekly`` / ``keep_monthly`` / ``keep_yearly`` most recent UTC
    days / ISO weeks / months / years that have an image (restic's ``forget`` semantics:
    :mod:`airflow_machine_images.planning.gfs`), and every image younger than ``max_age``; an image kept
    by any rule stays. It deletes the rest, ``max_concurrency`` at a time. It never deletes
    an image outside the selector, an image this package did not make (``managed-by=airflow``) unless
    ``include_unmanaged``, the newest READY image of a source, or an image that is not READY; a
    configuration that could (no selector, ``keep_last=0``, ``max_age=0``, neither) is rejected before
    any request. Each image is read again right before its delete and deleted by the numeric id read,
    only if it is still the image planned on (an image deleted and made again under the name since is
    another id, and left alone). Each delete carries a task-derived requestId, so a retried or re-run
    task deletes nothing twice.

    Returns ``{"project_id", "dry_run", "deleted", "kept", "kept_by", "not_ready", "skipped", "why_skipped",
    "unmanaged", "by_source"}`` (and ``"would_delete"`` on a dry run; ``results.retention_summary``);
    ``kept_by`` names, per kept image, the rules that keep it (``newest``, ``last``, ``daily:2026-05-20``,
    ``weekly:2026-W21``, ``monthly:2026-05``, ``yearly:2026``, ``max_age``).

    :param label_selector: images must carry all of these labels (e.g. ``{"managed-by": "airflow"}``). Templated.
    :param name_prefix: images' names must start with this. Templated.
    :param keep_last: keep the newest N READY images of each source instance (N >= 1).
    :param keep_daily: keep the newest image of each of the N most recent UTC days that have an image.
    :param keep_weekly: keep the newest image of each of the N most recent ISO weeks (UTC) that have one.
    :param keep_monthly: keep the newest image of each of the N most recent months (UTC) that have one.
    :param keep_yearly: keep the newest image of each of the N most recent years (UTC) that have one.
    :param max_age: keep images younger than this (a timedelta, or seconds).
    :param include_unmanaged: also prune selected images without ``managed-by=airflow`` (made by hand or
        another tool); by default they are listed as ``unmanaged`` and left alone.
    :param dry_run: log the plan and delete nothing.
    :param max_concurrency: deletions in flight at once.
    :param timeout: seconds to wait for each deletion.
    :param project_id: the project; defaults to the connection's. Templated.
    :param api_version: ``beta`` or ``v1``.
    :param gcp_conn_id: the Airflow connection to Google Cloud. Templated.
    :param impersonation_chain: service account(s) to impersonate. Templated.
    :param api_endpoint: another API root (e.g. the emulator), one ``[machine_images] allowed_endpoints`` lists.
    """

    template_fields: Sequence[str] = connection_template_fields("label_selector", "name_prefix", "plan_only")
    template_fields_renderers = {"label_selector": "json"}
    ui_color = "#fbe3d9"

    def __init__(
        self,
        *,
        label_selector: dict[str, str] | str | None = None,
        name_prefix: str | None = None,
        keep_last: int | None = None,
        max_age: timedelta | float | None = None,
        include_unmanaged: bool = False,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        keep_monthly: int | None = None,
        keep_yearly: int | None = None,
        dry_run: bool | str = False,
        max_concurrency: int = 4,
        timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(max_age, bool) or not isinstance(max_age, (timedelta, int, float, type(None))):
            raise MachineImageValidationError("max_age", "must be a timedelta or a number of seconds")
        counts = KeepCounts(keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly)  # checked now
        if not counts.any and max_age is None:
            raise MachineImageValidationError(
                "keep_last",
                "give keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly and/or max_age: what should be "
                "kept?",
            )
        self.label_selector = label_selector
        self.name_prefix = name_prefix
        self.keep_last = keep_last
        self.keep_daily = keep_daily
        self.keep_weekly = keep_weekly
        self.keep_monthly = keep_monthly
        self.keep_yearly = keep_yearly
        self.max_age: timedelta | None = timedelta(seconds=max_age) if isinstance(max_age, (int, float)) else max_age
        self.include_unmanaged = validate_bool(include_unmanaged, "include_unmanaged")
        # Stored (and templated) under another name: BaseOperator.dry_run() is a method. A template
        # such as "{{ params.dry_run }}" is checked once rendered (see execute); anything else now.
        self.plan_only: bool | str = dry_run if is_templated(dry_run) else validate_bool(dry_run, "dry_run")
        self.max_concurrency = validate_positive_int(max_concurrency, "max_concurrency")
        self.timeout = validate_positive_number(timeout, "timeout")
        if not is_templated(label_selector) and not is_templated(name_prefix):
            self._policy()  # an unsafe configuration fails when the DAG is parsed

    def _policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            label_selector=(
                split_label_selector(self.label_selector)
                if isinstance(self.label_selector, str)
                else self.label_selector or {}
            ),
            name_prefix=self.name_prefix or None,
            keep_last=self.keep_last,
            max_age=self.max_age,
            include_unmanaged=self.include_unmanaged,
            keep_daily=self.keep_daily,
            keep_weekly=self.keep_weekly,
            keep_monthly=self.keep_monthly,
            keep_yearly=self.keep_yearly,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        with failing_on_bad_input():
            policy = self._policy()
            dry_run = coerce_rendered_bool(self.plan_only, "dry_run")
            project_id = self.resolve_project_id()
        warnings: list[ListWarning] = []
        images = self.hook.list_machine_images(project_id=project_id, filter_=policy.server_filter(), warnings=warnings)
        partial = partial_warnings(warnings)
        plan = plan_retention(images, policy, now=timezone.utcnow())
        self.log.info(
            "Retention in %s (%s): %d images selected, %d to keep, %d to delete, %d not READY (left alone)",
            project_id,
            policy.describe(),
            len(plan.keep) + len(plan.delete) + len(plan.not_ready) + len(plan.skipped),
            len(plan.keep),
            len(plan.delete),
            len(plan.not_ready),
        )
        if plan.skipped:
            self.log.warning("Left alone, they changed while they were listed: %s", plan.skipped)
        if plan.unmanaged:
            self.log.info(
                "Left alone, made by something else than this package (no managed-by=airflow; include_unmanaged "
                "prunes them too): %s",
                plan.unmanaged,
            )
        for source, decision in plan.by_source.items():
            self.log.info("  %s: keep %s; delete %s", source, decision["keep"], decision["delete"] or "nothing")
            for name in decision["keep"]:
                self.log.info("    %s kept by %s", name, ", ".join(plan.kept_by.get(name, [])))
        if plan.not_ready:
            self.log.info("  not READY, left alone: %s", plan.not_ready)
        if partial:
            # A warned list may have left images out (discovery: MachineImageList.warning). Deleting only
            # what it shows would still delete a subset of the right set, but the plan's counts and the
            # guards would rest on a partial view: delete nothing, and let the next try list again.
            self.log.warning(
                "machineImages.list warned that images may be missing (%s): retention deletes nothing on a "
                "partial listing",
                describe_all(partial),
            )
        if dry_run:
            self.log.info("Dry run: nothing deleted (would delete %s)", plan.delete)
            return retention_summary(project_id, plan, dry_run=True, deleted=None)
        if partial:
            raise PartialListingError(
                f"Retention in project {project_id} deleted nothing: machineImages.list warned that images may "
                f"be missing ({describe_all(partial)}); the next try lists again"
            )
        deleted, skipped = self._delete_all(context, project_id, plan, policy)
        return retention_summary(project_id, plan, dry_run=False, deleted=deleted, skipped=skipped)

    def _delete_all(
        self, context: Context, project_id: str, plan: RetentionPlan, policy: RetentionPolicy
    ) -> tuple[list[str], dict[str, str]]:
        """Delete the plan's images with bounded concurrency; raise naming every failure after trying them all.

        The listing is a past view: before a source's images are deleted, the images that justify it
        (:attr:`RetentionPlan.guards`) are read again, and each image is checked against its planned entry on
        the read that precedes its delete. Anything that changed since the listing (gone, no longer READY, no
        longer selected, made again) is skipped and logged; the next run decides on fresh data.

        :return: the names deleted, and the names skipped with why.
        """
        hooks = threading.local()

        def changed(name: str) -> str | None:
            if not hasattr(hooks, "hook"):
                hooks.hook = self.new_hook()  # one session per thread
            return changed_since_listed(hooks.hook, project_id, plan.listed[name], policy)

        guard_names = sorted({name for names in plan.guards.values() for name in names})
        with ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="retention") as pool:
            guard_changes = dict(zip(guard_names, pool.map(_or_error(changed), guard_names), strict=True))
            skipped: dict[str, str] = {}
            candidates: list[str] = []
            for source, decision in plan.by_source.items():
                moved = {name: guard_changes[name] for name in plan.guards.get(source, ()) if guard_changes[name]}
                if moved:
                    why = "; ".join(f"{name}: {why}" for name, why in sorted(moved.items()))
                    self.log.warning(
                        "Not deleting %s of %s: the newer image(s) that justify it changed since the listing (%s)",
                        decision["delete"],
                        source,
                        why,
                    )
                    skipped.update(
                        (name, f"the newer images that justify it changed ({why})") for name in decision["delete"]
                    )
                else:
                    candidates += decision["delete"]
            results = pool.map(lambda name: self._delete_one(context, project_id, plan, policy, name), candidates)
            outcomes = dict(zip(candidates, results, strict=True))
        failures = {name: why for name, (outcome, why) in outcomes.items() if outcome == "failed"}
        skipped.update((name, str(why)) for name, (outcome, why) in outcomes.items() if outcome == "skipped")
        deleted = sorted(name for name, (outcome, _) in outcomes.items() if outcome == "deleted")
        if failures:
            details = "; ".join(f"{name}: {error}" for name, error in sorted(failures.items()))
            raise ComputeEngineRetentionError(
                f"Retention deleted {len(deleted)} image(s) but failed on {len(failures)}: {details}"
            )
        return deleted, skipped

    def _delete_one(
        self, context: Context, project_id: str, plan: RetentionPlan, policy: RetentionPolicy, name: str
    ) -> tuple[str, str | None]:
        """Read one image, check it against its planned entry, delete it by id and confirm it is gone.

        One submission only: a delete that the server's answer would have to submit again is not
        resubmitted without planning again (an image of that name may be another by then).

        :return: ``("deleted", None)``, ``("skipped", why)`` when it is gone or changed since the listing or
            would need a new submission, or ``("failed", error text)``.
        """
        hook = self.new_hook()  # one session per thread
        planned = plan.listed[name]
        identity = TaskInstanceIdentity.of(context["ti"])
        request = DeleteRequest(
            MachineImageDeleteTarget(planned=planned, policy=policy),
            project_id,
            name,
            RequestIds(identity, project_id, f"{name}@{planned.get('id')}", "delete"),
        )
        try:
            started = delete.start_delete(hook, request, 0, is_retry=context_is_retry(context), log=self.log)
            if not started.deleted:
                return "skipped", "it is gone"
            delete.wait_until_gone(hook, request, started, timeout=self.timeout, poll_interval=10.0, log=self.log)
        except ChangedSinceListedError as changed:
            self.log.warning("Not deleting %s", changed)
            return "skipped", str(changed).removeprefix(f"{request.what}: ")
        except ResubmissionNeeded as again:
            self.log.warning("Not deleting %s again without planning again: %s", request.what, again)
            return "skipped", f"the delete would have to be submitted again ({again}); the next run plans again"
        except (ComputeEngineError, AirflowFailException) as error:
            return "failed", str(error)
        return "deleted", None


def _or_error(check: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """``check``, with a failed read reported as the reason (so a guard that cannot be read blocks deletions)."""

    def checked(name: str) -> str | None:
        try:
            return check(name)
        except (ComputeEngineError, AirflowFailException) as error:
            return f"could not be read again: {error}"

    return checked
