"""One transport-neutral description of the Compute Engine machine-image API.

Both hooks (``requests`` on workers, ``aiohttp`` in the triggerer) build their requests with
:class:`ComputeApi`, turn responses into data or typed errors with :func:`parse_response` and walk
paged lists with :class:`PageWalk`, so URL building, paging, error parsing and the permission hints
exist once. Nothing here does I/O: the page walkers are handed the function that fetches a page.
"""

from __future__ import annotations

import email.utils
import json
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from airflow_machine_images.api.list_warnings import ListWarning, list_warning
from airflow_machine_images.api.redaction import scrub, scrub_message
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    ConcurrentOperationsQuotaError,
    DeadlineExceededError,
    EndpointUnreachableError,
    ErrorDetails,
    InvalidRequestError,
    MachineImageValidationError,
    MalformedResponseError,
    PermissionDeniedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
    RedirectNotFollowedError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResourceNotReadyError,
    ResponseLimitError,
    TransientApiError,
    operation_failed,
    parse_error_details,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

DEFAULT_ENDPOINT = "https://compute.googleapis.com"
#: The most pages a walk through a paged list follows (500 items a page: half a million items).
MAX_PAGES = 1000
API_VERSIONS = ("beta", "v1")

#: Statuses worth retrying: rate limits and server-side faults.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: 403 reasons that are per-minute rate limits (retry), not missing permissions.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: Reasons that mean a resource quota is used up: retrying will not help.
QUOTA_REASONS = frozenset({"quotaExceeded", "QUOTA_EXCEEDED"})
#: The ``ErrorInfo`` reason of a 403 for too many operations in flight; it clears as they finish
#: (Compute Engine docs, "Operations quota"; Terraform's ``is403ConcurrentOperationsQuotaError``).
CONCURRENT_OPERATIONS_REASON = "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"
#: A 400 reason for a resource in a temporary state (Terraform retries it: magic-modules pull 13881).
NOT_READY_REASON = "resourceNotReady"

_PERMISSIONS = {
    "machineImages.insert": ("compute.machineImages.create", "compute.instances.useReadOnly"),
    "machineImages.get": ("compute.machineImages.get",),
    "machineImages.list": ("compute.machineImages.list",),
    "machineImages.delete": ("compute.machineImages.delete",),
    "machineImages.setLabels": ("compute.machineImages.setLabels",),
    "globalOperations.get": ("compute.globalOperations.get",),
    "globalOperations.wait": ("compute.globalOperations.get",),
    "globalOperations.list": ("compute.globalOperations.list",),
    # instances.insert from a machine image: create on the instance's project, useReadOnly on the image
    # (Compute Engine docs, "Create VMs from machine images", required roles).
    "instances.insert": ("compute.instances.create", "compute.machineImages.useReadOnly"),
    "instances.get": ("compute.instances.get",),
    "instances.delete": ("compute.instances.delete",),
    "zoneOperations.get": ("compute.zoneOperations.get",),
    "zoneOperations.wait": ("compute.zoneOperations.get",),
    "zoneOperations.list": ("compute.zoneOperations.list",),
    "instances.aggregatedList": ("compute.instances.list",),
}

_REQUIRED_FIELDS = {
    "machineImages.insert": ("name", "status"),
    "machineImages.delete": ("name", "status"),
    "machineImages.setLabels": ("name", "status"),
    "globalOperations.get": ("name", "status"),
    "globalOperations.wait": ("name", "status"),
    "machineImages.get": ("name", "status"),
    "instances.insert": ("name", "status"),
    "instances.delete": ("name", "status"),
    "instances.get": ("name", "status", "selfLink"),
    "zoneOperations.get": ("name", "status"),
    "zoneOperations.wait": ("name", "status"),
}
#: Actions that answer with an Operation (or a list of them), whose status is one of three.
_OPERATION_ACTIONS = frozenset(
    {
        "machineImages.insert",
        "machineImages.delete",
        "machineImages.setLabels",
        "globalOperations.get",
        "globalOperations.wait",
        "globalOperations.list",
        "instances.insert",
        "instances.delete",
        "zoneOperations.get",
        "zoneOperations.wait",
        "zoneOperations.list",
    }
)
OPERATION_STATUSES = frozenset({"PENDING", "RUNNING", "DONE"})
#: The JSON types of the fields the package reads, in a resource or a list item.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "status": (str,),
    "selfLink": (str,),
    "targetLink": (str,),
    "sourceInstance": (str,),
    "creationTimestamp": (str,),
    "labelFingerprint": (str,),
    "httpErrorMessage": (str,),
    "id": (str, int),
    "totalStorageBytes": (str, int),
    "progress": (int,),
    "httpErrorStatusCode": (int,),
    "labels": (dict,),
    "error": (dict,),
    "storageLocations": (list,),
}

_VERSION_SUFFIX = re.compile(r"/compute/(?:beta|v1|alpha)/?$")


@dataclass(frozen=True)
class ApiCall:
    """One HTTP request, ready for any transport.

    :param action: the API method (``machineImages.insert``); used in logs, errors and retries.
    :param method: the HTTP method.
    :param url: the full URL without query string (path segments already encoded).
    :param params: the query parameters.
    :param body: the JSON body, if any (kept out of ``repr``: it may hold key material).
    :param long_poll: the server may hold the request open for up to ~2 minutes (``wait``).
    """

    action: str
    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = field(default=None, repr=False)  # may hold key material
    long_poll: bool = False

    @property
    def permissions(self) -> tuple[str, ...]:
        """The IAM permissions this call needs."""
        return _PERMISSIONS.get(self.action, ())

    def describe(self) -> str:
        """Name the call for logs: the action and the resource path (no body, no credentials)."""
        return f"{self.action} {urlsplit(self.url).path}"


def normalize_endpoint(endpoint: str | None) -> str:
    """Return the API root without a trailing slash or ``/compute/{version}`` suffix.

    Accepts both our form (``http://127.0.0.1:8085``) and googleapiclient's
    (``http://127.0.0.1:8085/compute/beta/``).

    :param endpoint: the configured endpoint, or None for Google's.
    """
    if not endpoint:
        return DEFAULT_ENDPOINT
    return _VERSION_SUFFIX.sub("", endpoint.rstrip("/")).rstrip("/")


#: Path segments HTTP clients drop or collapse (``requests`` and ``yarl`` both resolve ``..``, even
#: percent-encoded), so they would send the request to another resource.
_UNSAFE_SEGMENTS = frozenset({"", ".", ".."})


def _segment(value: str) -> str:
    """``value`` as exactly one encoded path segment.

    :param value: a project, name or literal path part.
    :raises MachineImageValidationError: ``value`` is not a string, or is empty, ``.`` or ``..``.
    """
    if not isinstance(value, str) or value in _UNSAFE_SEGMENTS:
        raise MachineImageValidationError(
            "URL path segment", "must be a string other than '', '.' and '..'", repr(value)[:80]
        )
    return quote(value, safe="")


@dataclass(frozen=True)
class ComputeApi:
    """Builds :class:`ApiCall` objects for one endpoint and API version.

    :param endpoint: the API root, e.g. ``https://compute.googleapis.com`` or the emulator's URL.
    :param version: ``beta`` or ``v1``.
    """

    endpoint: str = DEFAULT_ENDPOINT
    version: str = "beta"

    def _project_url(self, project: str, *segments: str) -> str:
        path = "/".join(_segment(s) for s in ("projects", project, *segments))
        return f"{self.endpoint}/compute/{self.version}/{path}"

    def insert_machine_image(
        self, project: str, body: Mapping[str, Any], *, source_instance: str, request_id: str
    ) -> ApiCall:
        """``machineImages.insert``; the source instance travels as the query parameter, as Google's clients send it."""
        return ApiCall(
            "machineImages.insert",
            "POST",
            self._project_url(project, "global", "machineImages"),
            params={"requestId": request_id, "sourceInstance": source_instance},
            body=body,
        )

    def get_machine_image(self, project: str, name: str) -> ApiCall:
        """``machineImages.get``."""
        return ApiCall("machineImages.get", "GET", self._project_url(project, "global", "machineImages", name))

    def list_machine_images(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
        order_by: str | None = None,
    ) -> ApiCall:
        """``machineImages.list``, one page."""
        params = _list_params(filter_, max_results, page_token, order_by)
        return ApiCall(
            "machineImages.list", "GET", self._project_url(project, "global", "machineImages"), params=params
        )

    def delete_machine_image(self, project: str, name: str, *, request_id: str) -> ApiCall:
        """``machineImages.delete``."""
        return ApiCall(
            "machineImages.delete",
            "DELETE",
            self._project_url(project, "global", "machineImages", name),
            params={"requestId": request_id},
        )

    def set_labels(self, project: str, name: str, *, labels: Mapping[str, str], label_fingerprint: str) -> ApiCall:
        """``machineImages.setLabels``.

        It takes no ``requestId``: its only parameters are ``project`` and ``resource`` in both
        ``googleapiclient/discovery_cache/documents/compute.beta.json`` and ``compute.v1.json``
        (``resources.machineImages.methods.setLabels.parameters``); the label fingerprint is what
        makes a repeat harmless (a stale one is refused with HTTP 412).
        """
        return ApiCall(
            "machineImages.setLabels",
            "POST",
            self._project_url(project, "global", "machineImages", name, "setLabels"),
            body={"labels": dict(labels), "labelFingerprint": label_fingerprint},
        )

    def _operations(self, project: str, zone: str | None, *segments: str) -> tuple[str, str]:
        """The collection prefix (``globalOperations``/``zoneOperations``) and the URL of an operations path.

        Global operations live at ``projects/P/global/operations``, zonal ones at
        ``projects/P/zones/Z/operations`` (discovery documents, ``globalOperations`` and ``zoneOperations``);
        the methods and their answers are otherwise the same.
        """
        if zone is None:
            return "globalOperations", self._project_url(project, "global", "operations", *segments)
        return "zoneOperations", self._project_url(project, "zones", zone, "operations", *segments)

    def get_operation(self, project: str, operation: str, *, zone: str | None = None) -> ApiCall:
        """``globalOperations.get``, or ``zoneOperations.get`` with a ``zone``."""
        collection, url = self._operations(project, zone, operation)
        return ApiCall(f"{collection}.get", "GET", url)

    def wait_operation(self, project: str, operation: str, *, zone: str | None = None) -> ApiCall:
        """``globalOperations.wait`` (or ``zoneOperations.wait``): held until DONE or about two minutes."""
        collection, url = self._operations(project, zone, operation, "wait")
        return ApiCall(f"{collection}.wait", "POST", url, long_poll=True)

    def list_operations(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
        zone: str | None = None,
    ) -> ApiCall:
        """``globalOperations.list`` (or ``zoneOperations.list``), one page."""
        params = _list_params(filter_, max_results, page_token, None)
        collection, url = self._operations(project, zone)
        return ApiCall(f"{collection}.list", "GET", url, params=params)

    def insert_instance(
        self, project: str, zone: str, body: Mapping[str, Any], *, request_id: str, source_machine_image: str
    ) -> ApiCall:
        """``instances.insert`` from a machine image.

        Both discovery documents (beta and v1) have ``sourceMachineImage`` as a query parameter of
        ``instances.insert`` and as a field of the Instance resource; Google's REST example ("Create
        VMs from machine images") sends the body field. We send both, with the same value.
        """
        return ApiCall(
            "instances.insert",
            "POST",
            self._project_url(project, "zones", zone, "instances"),
            params={"requestId": request_id, "sourceMachineImage": source_machine_image},
            body=body,
        )

    def get_instance(self, project: str, zone: str, instance: str) -> ApiCall:
        """``instances.get``: ``instance`` may be a name or a numeric id (the discovery document's
        ``instance`` parameter pattern is ``[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?|[1-9][0-9]{0,19}``), and
        ``project`` a project id or number (its ``project`` pattern allows ``[0-9]{1,19}``)."""
        return ApiCall("instances.get", "GET", self._project_url(project, "zones", zone, "instances", instance))

    def delete_instance(self, project: str, zone: str, instance: str, *, request_id: str) -> ApiCall:
        """``instances.delete`` (``instance`` is a name or a numeric id: the discovery pattern allows both)."""
        return ApiCall(
            "instances.delete",
            "DELETE",
            self._project_url(project, "zones", zone, "instances", instance),
            params={"requestId": request_id},
        )

    def aggregated_list_instances(
        self,
        project: str,
        *,
        filter_: str | None = None,
        max_results: int = 500,
        page_token: str | None = None,
    ) -> ApiCall:
        """``instances.aggregatedList``, one page: ``items`` maps ``zones/Z`` to ``{"instances": [...]}``
        or to ``{"warning": ...}``. ``returnPartialSuccess`` is not sent (v1 lacks it; a partial answer
        must not pass for a whole one)."""
        params = _list_params(filter_, max_results, page_token, None)
        return ApiCall(
            "instances.aggregatedList", "GET", self._project_url(project, "aggregated", "instances"), params=params
        )


#: What the real API answers a list request with both (doitintl/kubeip issue 132; the discovery
#: document's ``orderBy`` text: "only sorting by ``name`` or ``creationTimestamp desc`` is supported").
FILTER_WITH_ORDER_BY = "Specifying both a list filter and sort order is not currently supported"


def _list_params(filter_: str | None, max_results: int, page_token: str | None, order_by: str | None) -> dict[str, str]:
    """The query of one list page.

    :raises MachineImageValidationError: both ``filter_`` and ``order_by`` are given: Compute Engine
        answers such a request with HTTP 400, so it is refused here, before any request.
    """
    if filter_ and order_by:
        raise MachineImageValidationError(
            "filter_/order_by",
            f"give a filter or an order_by, not both: Compute Engine refuses a list request with both "
            f"(HTTP 400 '{FILTER_WITH_ORDER_BY}'); filter on the server and sort the results yourself",
            f"filter_={filter_[:60]!r}, order_by={order_by[:40]!r}",
        )
    params = {"maxResults": str(max_results)}
    if filter_:
        params["filter"] = filter_
    if page_token:
        params["pageToken"] = page_token
    if order_by:
        params["orderBy"] = order_by
    return params


@dataclass
class PageWalk:
    """Where a walk through a paged list (``items``, ``nextPageToken``) stands; pure, the walkers fetch.

    A misbehaving endpoint cannot keep a walk going: it ends with :class:`ResponseLimitError` after
    ``max_pages`` pages, or at once when a page names a token an earlier page named (the list would
    cycle).

    :param token: the token of the next page to fetch (None: the first, or the walk is over).
    :param done: the last page has been taken.
    :param what: the list, for errors (e.g. ``machineImages.list``).
    :param max_pages: the most pages followed.
    :param pages: pages taken so far.
    :param seen: the page tokens met so far.
    :param warnings: the ``warning`` of every page that carried one (a list with a warning may have
        left items out: :mod:`airflow_machine_images.api.list_warnings`).
    """

    token: str | None = None
    done: bool = False
    what: str = "a paged list"
    max_pages: int = MAX_PAGES
    pages: int = 0
    seen: set[str] = field(default_factory=set, repr=False)
    warnings: list[ListWarning] = field(default_factory=list)

    def take(self, page: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Record a fetched page and return its items; without a ``nextPageToken`` it was the last.

        :param page: one answer of a ``.list`` call.
        :raises ResponseLimitError: the page repeats a token, or the walk reached ``max_pages``.
        """
        self.pages += 1
        warning = list_warning(page)
        if warning is not None:
            self.warnings.append(warning)
        token = page.get("nextPageToken") or None
        if token is not None:
            if token in self.seen:
                raise ResponseLimitError(
                    f"{self.what}: page {self.pages} names a page token an earlier page named; the list "
                    "repeats itself and would never end",
                    action=self.what,
                )
            if self.pages >= self.max_pages:
                raise ResponseLimitError(
                    f"{self.what}: more than {self.max_pages} pages, the limit of one walk (MAX_PAGES); "
                    "narrow the filter, or the endpoint misbehaves",
                    action=self.what,
                )
            self.seen.add(token)
        self.token = token
        self.done = token is None
        return list(page.get("items", []))


def iter_pages(
    fetch: Callable[[str | None], Mapping[str, Any]], what: str = "a paged list", walk: PageWalk | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the items of every page, fetching each page only when the one before is used up.

    :param fetch: reads one page given its token (None for the first).
    :param what: the list, for errors.
    :param walk: the walk to record into (its ``warnings`` can be read afterwards); a new one if None.
    """
    walk = walk if walk is not None else PageWalk(what=what)
    while not walk.done:
        yield from walk.take(fetch(walk.token))


async def collect_pages(
    fetch: Callable[[str | None], Awaitable[Mapping[str, Any]]],
    what: str = "a paged list",
    walk: PageWalk | None = None,
) -> list[dict[str, Any]]:
    """The items of every page, fetched one page after the other.

    :param fetch: reads one page given its token (None for the first).
    :param what: the list, for errors.
    :param walk: the walk to record into (its ``warnings`` can be read afterwards); a new one if None.
    """
    walk = walk if walk is not None else PageWalk(what=what)
    items: list[dict[str, Any]] = []
    while not walk.done:
        items += walk.take(await fetch(walk.token))
    return items


def transport_error(call: ApiCall, error: BaseException) -> ComputeEngineApiError:
    """The typed error for a request that got no HTTP answer.

    A host name that does not resolve, or a host that refuses connections, is a configuration error
    (a wrong endpoint, an emulator that is not running): :class:`EndpointUnreachableError`, which is
    neither retried nor retried by Airflow. Anything else (a dropped connection, a timeout, a reset)
    may pass: :class:`TransientApiError`, retried with backoff.

    :param call: the call that was made.
    :param error: the transport's exception (``requests`` or ``aiohttp``).
    """
    host = urlsplit(call.url).hostname
    cause = _root_connection_cause(error)
    if isinstance(cause, socket.gaierror):
        return EndpointUnreachableError(
            f"{call.describe()} failed: the API host {host!r} does not resolve ({cause}); check the endpoint",
            action=call.action,
        )
    if isinstance(cause, ConnectionRefusedError):
        return EndpointUnreachableError(
            f"{call.describe()} failed: {host!r} refused the connection; check the endpoint (is the emulator running?)",
            action=call.action,
        )
    return TransientApiError(f"{call.describe()} failed: {type(error).__name__}: {error}", action=call.action)


def _root_connection_cause(error: BaseException) -> BaseException | None:
    """The name-resolution or refused-connection error behind a transport's exception, if any.

    ``requests`` wraps it in urllib3's ``MaxRetryError.reason``; aiohttp in ``os_error`` or ``__cause__``.
    """
    pending: list[object] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (socket.gaierror, ConnectionRefusedError)):
            return current
        pending.extend((current.__cause__, current.__context__, getattr(current, "reason", None)))
        pending.extend((getattr(current, "os_error", None), *current.args))
    return None


def parse_timestamp(value: object) -> datetime | None:
    """An RFC 3339 timestamp of the API (``creationTimestamp``, ``insertTime``) as an aware datetime.

    :param value: the field's value; None if absent, unreadable or without a time zone.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def response_too_large(call: ApiCall, limit: int) -> ResponseLimitError:
    """The error for an answer larger than ``limit`` bytes (not retried: the endpoint misbehaves).

    :param call: the call that was made.
    :param limit: the hook's ``max_response_bytes``.
    """
    return ResponseLimitError(
        f"{call.describe()} answered with more than {limit / 2**20:g} MiB ({limit:,} bytes), the limit of one "
        "answer (max_response_bytes); no Compute Engine answer is that large: the endpoint misbehaves",
        action=call.action,
    )


def deadline_exceeded(call: ApiCall, total: float, read: float) -> DeadlineExceededError:
    """The error for an attempt that outlasted its whole-call deadline.

    :param call: the call that was made.
    :param total: the attempt's deadline, in seconds.
    :param read: the per-read timeout that was in force.
    """
    return DeadlineExceededError(
        f"{call.describe()} failed: no complete answer within {total:g} s, the deadline of the whole call "
        f"(call_timeout, or connect_timeout + read timeout, capped by the caller's deadline); each read alone "
        f"may take {read:g} s, but a server that drips bytes is cut here",
        action=call.action,
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent or unreadable.

    :param value: the header value.
    :param now: the current epoch time (for tests).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", errors="replace")
    text = re.sub(r"<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def parse_response(
    call: ApiCall, status: int, raw: bytes, headers: Mapping[str, str], *, secrets: Iterable[str | None] = ()
) -> dict[str, Any]:
    """Turn a response into its JSON object, or raise the typed error it stands for.

    :param call: the call that was made.
    :param status: the HTTP status.
    :param raw: the response body.
    :param headers: the response headers (case-insensitive mapping preferred).
    :param secrets: values that must not appear in an error (the access token); the call's key
        material is added, since a server or proxy may quote the request back in its error.
    :raises ComputeEngineApiError: a subclass chosen by status and reason.
    """
    secrets = list(secrets)
    if 300 <= status < 400:
        raise redirect_error(call, status, headers)
    if status >= 300:
        # Scrubbed twice: as bytes, and once decoded (a JSON escape such as \u003d hides a key from the first).
        error = api_error(call, status, scrub(raw, secrets, call.body), headers)
        raise _scrubbed_error(error, lambda text: scrub_message(text, secrets, call.body))
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise MalformedResponseError(
            f"{call.describe()} answered HTTP {status} with a body that is not JSON: "
            f"{scrub_message(_snippet(scrub(raw, secrets, call.body)), secrets, call.body)!r}",
            http_status=status,
            action=call.action,
        ) from None
    if not isinstance(data, dict):
        raise MalformedResponseError(
            f"{call.describe()} answered with JSON {type(data).__name__}, expected an object",
            http_status=status,
            action=call.action,
        )
    missing = [f for f in _REQUIRED_FIELDS.get(call.action, ()) if not isinstance(data.get(f), str)]
    if missing:
        raise MalformedResponseError(
            f"{call.describe()} answered without the field(s) {', '.join(missing)}",
            http_status=status,
            action=call.action,
        )
    if "nextPageToken" in data and not isinstance(data["nextPageToken"], (str, type(None))):
        raise MalformedResponseError(
            f"{call.describe()} answered with a 'nextPageToken' that is not text",
            http_status=status,
            action=call.action,
        )
    # An aggregated list's items map scopes ("zones/Z") to scoped lists (InstanceAggregatedList schema).
    items_type = dict if call.action.endswith(".aggregatedList") else list
    if "items" in data and not isinstance(data["items"], items_type):
        raise MalformedResponseError(
            f"{call.describe()} answered with 'items' that is not a{'n object' if items_type is dict else ' list'}",
            http_status=status,
            action=call.action,
        )
    problem = _shape_problem(call.action, data)
    if problem:
        raise MalformedResponseError(
            f"{call.describe()} answered with {problem}", http_status=status, action=call.action
        )
    return data


def _scrubbed_error(error: ComputeEngineApiError, clean: Callable[[str], str]) -> ComputeEngineApiError:
    """``error`` with its message and every string of its ``errors`` passed through ``clean``.

    :param error: an error built from a server's answer.
    :param clean: hides secrets in one string.
    """
    error.message = clean(error.message)
    error.args = (error.message,)
    error.errors = [{key: clean(v) if isinstance(v, str) else v for key, v in e.items()} for e in error.errors]
    return error


def _shape_problem(action: str, data: Mapping[str, Any]) -> str | None:
    """What is wrong with the shape of an answer (or its list items), or None.

    Only the fields the package reads are checked, so that garbage is reported here, naming the
    field, instead of surfacing later as a ``KeyError`` or ``TypeError`` in an operator or a trigger.
    """
    listing = action.endswith(".list")
    resources = data.get("items", []) if listing else [data]
    for index, resource in enumerate(resources):
        where = f"items[{index}]" if listing else "a resource"
        if not isinstance(resource, dict):
            return f"{where} that is {type(resource).__name__}, not an object"
        if listing and not isinstance(resource.get("name"), str):
            return f"{where} without a name"
        for key, types in _FIELD_TYPES.items():
            value = resource.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                expected = " or ".join(t.__name__ for t in types)
                return f"{where} whose {key!r} is {type(value).__name__}, not {expected}"
        if action in _OPERATION_ACTIONS and resource.get("status", "DONE") not in OPERATION_STATUSES:
            return f"{where} whose status {str(resource.get('status'))[:40]!r} is not an operation status"
    return None


def redirect_error(call: ApiCall, status: int, headers: Mapping[str, str]) -> RedirectNotFollowedError:
    """The error for a redirect, which is never followed: it names the status and where it pointed.

    Compute Engine is not known to redirect API calls (no documentation says either way: unverified),
    so the safe reading is taken: a redirect comes from something between us and the API (a proxy, a
    captive portal, a misconfigured endpoint), and following it would send the request, its bearer
    token and any customer-supplied key to a host nobody configured. Retrying would not change it.

    :param call: the call that was made.
    :param status: the HTTP status (3xx).
    :param headers: the response headers.
    """
    location = (_header(headers, "Location") or "").strip()
    try:
        host = urlsplit(location).hostname
    except ValueError:
        host, location = None, "?"
    where = "the same host" if location else "nowhere (no Location header)"
    if host:
        where = f"host {host[:100]!r}"
    return RedirectNotFollowedError(
        f"{call.describe()} answered HTTP {status}, a redirect to {where}: redirects are not followed "
        "(the request, its credentials and any key material would go elsewhere); configure the final "
        "endpoint instead",
        http_status=status,
        action=call.action,
    )


def api_error(call: ApiCall, status: int, raw: bytes, headers: Mapping[str, str]) -> ComputeEngineApiError:
    """Build the typed error for an HTTP error response.

    :param call: the call that was made.
    :param status: the HTTP status (>= 300).
    :param raw: the response body: Google's error JSON, or anything else a proxy may send.
    :param headers: the response headers.
    """
    message, reason, errors, details = _error_details(raw)
    retry_after = parse_retry_after(_header(headers, "Retry-After"))
    cls = _error_class(status, reason, details)
    text = f"{call.describe()} failed: HTTP {status}"
    if reason:
        text += f" {reason}"
    text += f": {message}" if message else ""
    if details:
        text += f" [{details.describe()}]"
    if cls is PermissionDeniedError and call.permissions:
        text += f". This call needs the IAM permission(s) {', '.join(call.permissions)}"
        if call.action == "machineImages.insert":
            text += " (create on the image's project, useReadOnly on the source instance)"
    if cls is QuotaExceededError:
        text += f". Quota exhausted: {', '.join(details.quota_metrics) or reason}; waiting does not refill it"
    return cls(
        text,
        http_status=status,
        reason=reason,
        action=call.action,
        errors=errors,
        retry_after=retry_after,
        details=details,
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _error_details(raw: bytes) -> tuple[str, str | None, list[dict[str, Any]], ErrorDetails]:
    try:
        data = json.loads(raw)
    except ValueError:
        return _snippet(raw), None, [], ErrorDetails()
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return _snippet(raw), None, [], ErrorDetails()
    errors = [e for e in error.get("errors") or [] if isinstance(e, dict)]
    message = str(error.get("message") or (errors[0].get("message") if errors else "") or "")
    reason = next((str(e["reason"]) for e in errors if e.get("reason")), None)
    if reason is None and isinstance(error.get("status"), str):
        reason = error["status"]
    return message, reason, errors, parse_error_details(error.get("details"))


def _error_class(status: int, reason: str | None, details: ErrorDetails | None = None) -> type[ComputeEngineApiError]:
    """The error type by cause: the ``ErrorInfo`` reason of ``error.details`` first, then status and reason."""
    info_reasons = {str(i.get("reason")) for i in (details.error_info if details else ())}
    if status == 403 and CONCURRENT_OPERATIONS_REASON in info_reasons:
        return ConcurrentOperationsQuotaError
    if reason in QUOTA_REASONS or "QUOTA_EXCEEDED" in info_reasons:
        return QuotaExceededError
    if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS) or "RATE_LIMIT_EXCEEDED" in info_reasons:
        return RateLimitedError
    if status in RETRYABLE_STATUSES:
        return TransientApiError
    if status == 400 and reason == NOT_READY_REASON:
        return ResourceNotReadyError
    if status == 400:
        return InvalidRequestError
    if status in (401, 403):
        return PermissionDeniedError
    if status == 404:
        return ResourceNotFoundError
    if status == 409 and reason in (None, "alreadyExists"):
        return ResourceAlreadyExistsError
    if status == 412:
        return PreconditionFailedError
    return ComputeEngineApiError


def operation_errors(operation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``error.errors[]`` of a DONE operation, empty when it succeeded.

    :param operation: an Operation resource.
    """
    error = operation.get("error")
    if not isinstance(error, dict):
        return []
    errors = [e for e in error.get("errors") or [] if isinstance(e, dict)]
    # An error object with no entries still means failure: report it rather than call it success.
    return errors or [{"code": "UNKNOWN", "message": json.dumps(error)[:200]}]


def raise_for_operation_error(operation: Mapping[str, Any], *, secrets: Iterable[str] = ()) -> None:
    """Raise :class:`OperationFailedError` if a DONE operation carries errors.

    :param operation: an Operation resource.
    :param secrets: key material of the request that started it, hidden from the error in any form
        (anything shaped like key material is hidden anyway).
    """
    errors = operation_errors(operation)
    if errors:
        status_code = operation.get("httpErrorStatusCode")
        raise operation_failed(
            str(operation.get("name")),
            errors,
            http_error_status_code=status_code if isinstance(status_code, int) else None,
            http_error_message=operation.get("httpErrorMessage"),
            target_link=operation.get("targetLink"),
            secrets=secrets,
        )
