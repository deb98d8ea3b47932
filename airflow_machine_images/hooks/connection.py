"""The connection settings every operator, sensor and trigger of this package shares.

In the spirit of the Amazon provider's ``AwsBaseHookMixin`` and ``aws_template_fields()``: one mixin
holds the settings (project, connection id, impersonation chain, API version, endpoint), builds the
hooks from them, resolves the project, and hands them on to a trigger; one function lists the
templated connection fields. The hook module (and with it google-auth, ``requests`` and ``aiohttp``)
is imported only when a hook is built, never when a DAG file imports an operator.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_machine_images.api.calls import API_VERSIONS
from airflow_machine_images.validation import validate_choice, validate_project_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook
    from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook

DEFAULT_CONN_ID = "google_cloud_default"
#: The connection settings users template (the API version is checked when the DAG is parsed). Not
#: ``api_endpoint``: where requests (with their token and any key) go is no value a ``dag_run.conf`` or a
#: Variable may choose; it is given literally, and must be one ``[machine_images] allowed_endpoints`` lists.
CONNECTION_TEMPLATE_FIELDS = ("project_id", "gcp_conn_id", "impersonation_chain")


def connection_template_fields(*fields: str) -> tuple[str, ...]:
    """``fields`` followed by the templated connection settings, each once.

    :param fields: the class's own templated fields.
    """
    return tuple(dict.fromkeys((*fields, *CONNECTION_TEMPLATE_FIELDS)))


class ComputeEngineConnectionMixin:
    """Connection settings, the hooks built from them, the project, and the kwargs a trigger needs.

    Call :meth:`set_connection` from ``__init__``. ``project_id``, ``gcp_conn_id`` and
    ``impersonation_chain`` are templated in operators and sensors (see :func:`connection_template_fields`);
    ``api_endpoint`` is not (the hooks check it against ``[machine_images] allowed_endpoints``). The hook
    is built on first use, after rendering.
    """

    project_id: str | None
    gcp_conn_id: str
    impersonation_chain: str | Sequence[str] | None
    api_version: str
    api_endpoint: str | None

    def set_connection(
        self,
        *,
        project_id: str | None = None,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        impersonation_chain: str | Sequence[str] | None = None,
        api_version: str = "beta",
        api_endpoint: str | None = None,
    ) -> None:
        """Store the connection settings (the API version is checked now).

        :param project_id: the project; defaults to the connection's.
        :param gcp_conn_id: the Airflow connection to Google Cloud.
        :param impersonation_chain: service account(s) to impersonate.
        :param api_version: ``beta`` or ``v1``.
        :param api_endpoint: another API root (e.g. the emulator); defaults to the connection extra
            ``compute_api_endpoint``.
        """
        self.project_id = project_id
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.api_version = validate_choice(api_version, "api_version", API_VERSIONS)
        self.api_endpoint = api_endpoint

    def connection_kwargs(self) -> dict[str, Any]:
        """The settings a hook or trigger is built with (identifiers only: never a token or key)."""
        return {
            "gcp_conn_id": self.gcp_conn_id,
            "impersonation_chain": self.impersonation_chain,
            "api_version": self.api_version,
            "api_endpoint": self.api_endpoint,
        }

    def new_hook(self) -> ComputeEngineMachineImageHook:
        """A new synchronous hook; one per thread when calls run in parallel."""
        from airflow_machine_images.hooks.sync import ComputeEngineMachineImageHook  # loads google-auth, requests

        return ComputeEngineMachineImageHook(**self.connection_kwargs())

    def new_async_hook(self) -> ComputeEngineMachineImageAsyncHook:
        """A new async hook (hooks with the same settings share one HTTP session per event loop)."""
        from airflow_machine_images.hooks.asynchronous import ComputeEngineMachineImageAsyncHook  # loads aiohttp

        return ComputeEngineMachineImageAsyncHook(**self.connection_kwargs())

    @cached_property
    def hook(self) -> ComputeEngineMachineImageHook:
        """The synchronous hook, made on first use."""
        return self.new_hook()

    def resolve_project_id(self) -> str:
        """The project argument, else the connection's; validated, so it is safe in a URL.

        :raises MachineImageValidationError: neither is a valid project id.
        """
        return validate_project_id(self.project_id or self.hook.default_project_id)
