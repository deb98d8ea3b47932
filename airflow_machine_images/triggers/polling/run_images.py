"""Waiting on the images of runs: the machine images carrying a run's ``airflow-ti`` label, listed by label.

A fleet backup defers once for all its inserts
(:class:`~airflow_machine_images.triggers.fleet_backup.FleetBackupTrigger`), so its wait is keyed by
the run's label value, not by an operation or image name: one paged
``machineImages.list`` with the label filter per cycle shows every image of the run and its status,
about one call per 500 images, whatever the number of inserts. Label filters are checked again on
every answer (gcloud matches labels on the client: ``filter_rewrite.py`` says server-side label
matching "is currently problematic"), and a list that warns of missing items is marked incomplete,
so nothing is read as gone from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_machine_images.api.list_warnings import partial_warnings
from airflow_machine_images.bodies.labels import OWNER_LABEL, owner_label_filter
from airflow_machine_images.triggers.polling.coalescing import CoalescingPoller, Resource

if TYPE_CHECKING:
    from airflow_machine_images.api.list_warnings import ListWarning


class RunImagesPoller(CoalescingPoller):
    """Waits on runs' images; the resource of a run is ``{"images": {name: status}, "complete": bool}``."""

    async def list_states(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """One paged label-filtered list per run waited on.

        :param names: the runs' label values.
        :param warnings: each list page's ``warning`` is appended here.
        """
        states: dict[str, Resource] = {}
        for run_label in sorted(names):
            page_warnings: list[ListWarning] = []
            images = await self._list_all(
                self.hook.list_machine_images_page, owner_label_filter(run_label), page_warnings
            )
            warnings.extend(page_warnings)
            ours = [i for i in images if (i.get("labels") or {}).get(OWNER_LABEL) == run_label and "name" in i]
            states[run_label] = {
                "name": run_label,
                "images": {str(i["name"]): str(i.get("status")) for i in ours},
                "complete": not partial_warnings(page_warnings),
            }
        return states

    async def get(self, name: str) -> Resource:
        """The run's images (a run always "exists": it has none yet, or some).

        :param name: the run's label value.
        """
        return (await self.list_states({name}, []))[name]
