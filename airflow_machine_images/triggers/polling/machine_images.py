"""Waiting for machine images: their states read with ``machineImages.list`` and chunked name filters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_machine_images.triggers.polling.coalescing import CoalescingPoller, Resource, chunks, name_filter

if TYPE_CHECKING:
    from airflow_machine_images.api.list_warnings import ListWarning


class MachineImagePoller(CoalescingPoller):
    """Waits for machine images to reach a state (READY, INVALID, or absent)."""

    async def list_states(self, names: set[str], warnings: list[ListWarning]) -> dict[str, Resource]:
        """The images among ``names``, read with chunked name filters.

        :param names: the images waited for.
        :param warnings: each list page's ``warning`` is appended here.
        """
        states: dict[str, Resource] = {}
        for chunk in chunks(names):
            for image in await self._list_all(self.hook.list_machine_images_page, name_filter(chunk), warnings):
                if image["name"] in chunk:
                    states[image["name"]] = image
        return states

    async def get(self, name: str) -> Resource:
        """One ``machineImages.get``."""
        return await self.hook.get_machine_image(name=name, project_id=self.project_id)
