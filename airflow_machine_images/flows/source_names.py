"""Whether two references name the same source instance, asking the API only when a number is involved.

Compute Engine takes a project **number** wherever a project id goes and a numeric instance **id**
wherever an instance name goes: the discovery documents' ``project`` path pattern allows
``[0-9]{1,19}`` and the ``instance`` parameter of ``instances.get`` allows ``[1-9][0-9]{0,19}``
(``compute.beta.json`` / ``compute.v1.json``). It returns resources with the project **id** and the
instance **name** in their links (a Terraform maintainer: "most GCP APIs will accept either and
return the id", hashicorp/terraform-provider-google issue 11454; issue 13436 shows Compute Engine
replacing a number by the id). Google's AIP-2510 lets newer services echo whichever form they were
sent, so neither form is assumed: references are compared in their canonical form.

Project ids start with a letter and instance names too, so an all-digit project or instance segment
is a number or id. A reference without one is already canonical: comparing it costs no API call.
A reference with one is resolved by one ``instances.get`` (its ``selfLink`` gives the project id, its
``name`` the name), cached in :class:`SourceNames` for the rest of the try. When the instance cannot
be read (404: deleted since, or 403: no ``compute.instances.get``), the answer is "unknown" and the
caller takes the safe reading (see :func:`airflow_machine_images.flows.machine_image.check_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_machine_images.exceptions import (
    MachineImageValidationError,
    MalformedResponseError,
    PermissionDeniedError,
    ResourceNotFoundError,
)
from airflow_machine_images.validation import InstanceRef, parse_source_instance

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["InstanceReader", "Resolved", "SourceNames", "canonical_from_instance", "has_numbers"]


class InstanceReader(Protocol):
    """What resolves an instance (the sync hook's :meth:`get_instance`)."""

    def get_instance(self, *, zone: str, name: str, project_id: str | None = None) -> dict[str, Any]:
        """Return the Instance resource.

        :param zone: its zone.
        :param name: its name or numeric id.
        :param project_id: its project id or number.
        """
        ...


def has_numbers(ref: InstanceRef) -> bool:
    """Whether ``ref`` names its project by number or its instance by numeric id.

    :param ref: an instance reference.
    """
    return ref.project.isdigit() or ref.instance.isdigit()


@dataclass(frozen=True)
class Resolved:
    """An instance as the API names it.

    :param ref: project id, zone and instance name (from the instance's ``selfLink`` and ``name``).
    :param instance_id: its numeric id, when the API said.
    """

    ref: InstanceRef
    instance_id: str | None = None


def canonical_from_instance(instance: Mapping[str, Any]) -> Resolved:
    """The canonical reference of an ``instances.get`` answer.

    :param instance: the Instance resource.
    :raises MachineImageValidationError: its ``selfLink`` is not an instance URL.
    """
    link = parse_source_instance(instance.get("selfLink"), default_project=None, parameter="instances.get selfLink")
    name = instance.get("name")
    ref = InstanceRef(link.project, link.zone, name) if isinstance(name, str) and name else link
    raw_id = instance.get("id")
    return Resolved(ref, str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None)


@dataclass
class SourceNames:
    """Canonical forms of instance references, looked up at most once each (per try: the operator
    builds one with each :class:`~airflow_machine_images.flows.machine_image.InsertRequest`).

    :param resolved: reference -> its canonical form, or None when it could not be read.
    :param why_unknown: reference -> why it could not be read (404, 403, an odd answer).
    :param lookups: ``instances.get`` calls made (the extra API calls numbers cost).
    """

    resolved: dict[InstanceRef, Resolved | None] = field(default_factory=dict)
    why_unknown: dict[InstanceRef, str] = field(default_factory=dict)
    lookups: int = 0

    def resolve(self, hook: InstanceReader, ref: InstanceRef) -> Resolved | None:
        """``ref`` as the API names it, asking ``instances.get`` the first time; None if it cannot be read.

        :param hook: reads instances.
        :param ref: the reference.
        """
        if ref in self.resolved:
            return self.resolved[ref]
        self.lookups += 1
        found: Resolved | None = None
        try:
            found = canonical_from_instance(hook.get_instance(zone=ref.zone, name=ref.instance, project_id=ref.project))
        except ResourceNotFoundError:
            self.why_unknown[ref] = f"instances.get found no instance {ref.partial_url} (deleted since?)"
        except PermissionDeniedError:
            self.why_unknown[ref] = (
                f"instances.get on {ref.partial_url} was refused: the connection lacks compute.instances.get"
            )
        except (MachineImageValidationError, MalformedResponseError) as exc:
            self.why_unknown[ref] = f"instances.get on {ref.partial_url} answered something unreadable ({exc})"
        self.resolved[ref] = found
        return found

    def canonical(self, hook: InstanceReader, ref: InstanceRef) -> InstanceRef:
        """``ref`` itself when it has no numbers (no API call), else its canonical form if it can be read.

        :param hook: reads instances.
        :param ref: the reference.
        """
        if not has_numbers(ref):
            return ref
        found = self.resolve(hook, ref)
        return found.ref if found is not None else ref

    def same_instance(self, hook: InstanceReader, requested: InstanceRef, existing: InstanceRef) -> bool | None:
        """Whether two references name one instance: True, False, or None when it cannot be told.

        Equal texts are the same instance and references without numbers are compared as they are
        (no API call). Otherwise each reference with numbers is resolved and the canonical forms are
        compared; should the server's ``selfLink`` itself carry a project number, the instances'
        numeric ids are compared instead.

        :param hook: reads instances.
        :param requested: the source the task asks for.
        :param existing: the source an image was made from (its ``sourceInstance``).
        """
        if requested.same_instance(existing):
            return True
        if not (has_numbers(requested) or has_numbers(existing)):
            return False
        keys = [self._key(hook, ref) for ref in (requested, existing)]
        if keys[0] is None or keys[1] is None:
            return None
        if keys[0].ref.same_instance(keys[1].ref):
            return True
        if not (has_numbers(keys[0].ref) or has_numbers(keys[1].ref)):
            return False
        both = [self.resolve(hook, ref) for ref in (requested, existing)]
        if both[0] is None or both[1] is None or not both[0].instance_id or not both[1].instance_id:
            return None
        return both[0].ref.zone == both[1].ref.zone and both[0].instance_id == both[1].instance_id

    def _key(self, hook: InstanceReader, ref: InstanceRef) -> Resolved | None:
        """What ``ref`` is compared by: itself without numbers, else its resolved form (None: unknown)."""
        return self.resolve(hook, ref) if has_numbers(ref) else Resolved(ref)

    def why(self, *refs: InstanceRef) -> str:
        """Why the given references could not be resolved (for messages).

        :param refs: references :meth:`resolve` gave up on.
        """
        reasons = [self.why_unknown[ref] for ref in refs if ref in self.why_unknown]
        return "; ".join(reasons) or "the instances could not be compared"
