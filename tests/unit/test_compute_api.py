from __future__ import annotations

import asyncio
import json
import random
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pytest

from airflow_machine_images.api.calls import ApiCall, ComputeApi, normalize_endpoint
from airflow_machine_images.api.paging import MAX_PAGES, PageWalk, collect_pages, iter_pages
from airflow_machine_images.api.responses import api_error, parse_response, parse_retry_after, raise_for_operation_error
from airflow_machine_images.api.retry import RetryPolicy
from airflow_machine_images.api.schema import load_discovery_document
from airflow_machine_images.exceptions import (
    ComputeEngineApiError,
    ConcurrentOperationsQuotaError,
    InvalidRequestError,
    MalformedResponseError,
    OperationFailedError,
    PermissionDeniedError,
    PreconditionFailedError,
    QuotaExceededError,
    RateLimitedError,
    ResourceAlreadyExistsError,
    ResourceNotFoundError,
    ResourceNotReadyError,
    ResponseLimitError,
    TransientApiError,
)
from airflow_machine_images.validation import MachineImageValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

API = ComputeApi(endpoint="http://127.0.0.1:9999", version="beta")


def google_error(code: int, reason: str, message: str = "boom") -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}
    ).encode()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "https://compute.googleapis.com"),
        ("", "https://compute.googleapis.com"),
        ("http://127.0.0.1:8085", "http://127.0.0.1:8085"),
        ("http://127.0.0.1:8085/", "http://127.0.0.1:8085"),
        ("http://127.0.0.1:8085/compute/beta/", "http://127.0.0.1:8085"),
        ("https://private.example.com/root/compute/v1", "https://private.example.com/root"),
    ],
)
def test_normalize_endpoint(given: str | None, expected: str) -> None:
    assert normalize_endpoint(given) == expected


def test_insert_call_carries_request_id_and_source_as_query() -> None:
    call = API.insert_machine_image(
        "demo-project", {"name": "img"}, source_instance="projects/p/zones/us-central1-a/instances/i", request_id="r"
    )
    assert call.method == "POST"
    assert call.url == "http://127.0.0.1:9999/compute/beta/projects/demo-project/global/machineImages"
    assert call.params == {"requestId": "r", "sourceInstance": "projects/p/zones/us-central1-a/instances/i"}
    assert call.body == {"name": "img"}
    assert "compute.instances.useReadOnly" in call.permissions


def test_path_segments_are_encoded() -> None:
    call = API.get_machine_image("example.com:proj", "a/../b?x#y")
    assert call.url.endswith("/projects/example.com%3Aproj/global/machineImages/a%2F..%2Fb%3Fx%23y")


def every_call(api: ComputeApi) -> list[ApiCall]:
    """One call of each builder method the hooks use, with every optional parameter given (a list takes
    a filter or an order, never both)."""
    return [
        api.insert_machine_image("p", {"name": "i"}, source_instance="zones/us-central1-a/instances/i", request_id="r"),
        api.get_machine_image("p", "i"),
        api.list_machine_images("p", filter_="f", max_results=5, page_token="t"),
        api.list_machine_images("p", max_results=5, page_token="t", order_by="o"),
        api.delete_machine_image("p", "i", request_id="r"),
        api.set_labels("p", "i", labels={"a": "b"}, label_fingerprint="x"),
        api.get_operation("p", "op"),
        api.wait_operation("p", "op"),
        api.list_operations("p", filter_="f", max_results=5, page_token="t"),
        api.get_instance("123456789012", "z", "4567890123456789012"),
        api.aggregated_list_instances("p", filter_="f", max_results=5, page_token="t"),
        api.insert_instance(
            "p", "z", {"name": "i"}, request_id="r", source_machine_image="projects/p/global/machineImages/m"
        ),
        api.delete_instance("p", "z", "i", request_id="r"),
        api.set_deletion_protection("p", "z", "4567890123456789012", protect=False, request_id="r"),
        api.get_disk("p", "z", "4567890123456789012"),
        api.delete_disk("p", "z", "d", request_id="r"),
        api.get_serial_port_output("p", "z", "4567890123456789012", port=1, start=1024),
        api.delete_machine_image("123456789012", "4567890123456789012", request_id="r"),
        api.get_operation("p", "op", zone="us-central1-a"),
        api.wait_operation("p", "op", zone="us-central1-a"),
        api.list_operations("p", filter_="f", max_results=5, page_token="t", zone="us-central1-a"),
    ]


def test_every_builder_method_is_walked() -> None:
    """A builder method added later must join :func:`every_call`, or this fails."""
    built = {call.action for call in every_call(API)}
    methods = {name for name in vars(ComputeApi) if not name.startswith("_") and callable(getattr(ComputeApi, name))}
    # One action per builder method, and the three operation builders once more for zonal operations.
    assert len(built) == len(methods) + 3, (sorted(methods), sorted(built))


@pytest.mark.parametrize("version", ["beta", "v1"])
def test_every_call_matches_its_method_in_the_discovery_document(version: str) -> None:
    """Query parameters, HTTP method and path of every call, checked against ``compute.{version}.json``.

    E.g. ``machineImages.setLabels`` declares no ``requestId``, so none is sent; ``instances.get``
    takes a project number and a numeric instance id, as its path patterns allow.
    """
    document = load_discovery_document(version)
    system = set(document["parameters"])
    for call in every_call(ComputeApi(endpoint="https://compute.googleapis.com", version=version)):
        resource, method_name = call.action.split(".")
        method = document["resources"][resource]["methods"][method_name]
        declared = method["parameters"]
        query = {name for name, spec in declared.items() if spec["location"] == "query"}
        assert set(call.params) <= query | system, (call.action, set(call.params) - query)
        assert call.method == method["httpMethod"], call.action
        path = call.url.removeprefix(f"https://compute.googleapis.com/compute/{version}/")
        template = re.escape(method["path"])
        for name, spec in declared.items():
            if spec["location"] == "path":
                template = template.replace(re.escape("{" + name + "}"), f"(?:{spec.get('pattern', '[^/]+')})")
        assert re.fullmatch(template, unquote(path)), (call.action, path, method["path"])


def test_a_filter_with_an_order_is_refused_before_any_request() -> None:
    with pytest.raises(MachineImageValidationError) as info:
        API.list_machine_images("p", filter_="labels.a = b", order_by="creationTimestamp desc")
    assert "filter_" in str(info.value) and "order_by" in str(info.value)
    assert "Specifying both a list filter and sort order is not currently supported" in str(info.value)


def test_pages_are_walked_until_a_page_has_no_next_token() -> None:
    pages = {None: {"items": [{"name": "a"}], "nextPageToken": "t1"}, "t1": {"nextPageToken": ""}, "t2": {}}
    fetched: list[str | None] = []

    def fetch(token: str | None) -> dict:
        fetched.append(token)
        return pages[token]

    assert list(iter_pages(fetch)) == [{"name": "a"}]
    assert fetched == [None, "t1"]  # an empty token ends the walk, as a missing one does


def test_the_sync_walk_fetches_a_page_only_when_the_one_before_is_used_up() -> None:
    fetched: list[str | None] = []

    def fetch(token: str | None) -> dict:
        fetched.append(token)
        return {"items": [{"name": str(token)}], "nextPageToken": "next"}

    walk = iter_pages(fetch)
    assert next(walk) == {"name": "None"}
    assert fetched == [None]


def test_the_async_walk_collects_every_page() -> None:
    async def fetch(token: str | None) -> dict:
        return {"items": [{"name": f"after-{token}"}], **({"nextPageToken": "t1"} if token is None else {})}

    assert asyncio.run(collect_pages(fetch)) == [{"name": "after-None"}, {"name": "after-t1"}]
    walk = PageWalk()
    assert walk.take({"nextPageToken": "t"}) == [] and not walk.done and walk.token == "t"


@pytest.mark.parametrize("segment", ["..", ".", "", None, 7])
def test_segments_http_clients_would_resolve_are_refused(segment: object) -> None:
    with pytest.raises(MachineImageValidationError, match="URL path segment"):
        API.get_machine_image("p", segment)  # type: ignore[arg-type]
    with pytest.raises(MachineImageValidationError, match="URL path segment"):
        API.wait_operation(segment, "op")  # type: ignore[arg-type]


def test_wait_is_a_long_poll_and_list_has_paging_params() -> None:
    assert API.wait_operation("p", "op").long_poll
    call = API.list_operations("p", filter_='(name = "a") OR (name = "b")', page_token="t", max_results=50)
    assert call.params == {"maxResults": "50", "filter": '(name = "a") OR (name = "b")', "pageToken": "t"}


@pytest.mark.parametrize(
    ("status", "reason", "cls"),
    [
        (400, "invalid", InvalidRequestError),
        (401, "authError", PermissionDeniedError),
        (403, "forbidden", PermissionDeniedError),
        (403, "rateLimitExceeded", RateLimitedError),
        (403, "userRateLimitExceeded", RateLimitedError),
        (400, "resourceNotReady", ResourceNotReadyError),
        (403, "quotaExceeded", QuotaExceededError),
        (404, "notFound", ResourceNotFoundError),
        (409, "alreadyExists", ResourceAlreadyExistsError),
        (409, "resourceInUseByAnotherResource", ComputeEngineApiError),
        (412, "conditionNotMet", PreconditionFailedError),
        (429, "rateLimitExceeded", RateLimitedError),
        (500, "backendError", TransientApiError),
        (503, "backendError", TransientApiError),
        (501, "notImplemented", ComputeEngineApiError),
    ],
)
def test_error_classes(status: int, reason: str, cls: type) -> None:
    call = API.get_machine_image("p", "img")
    with pytest.raises(cls) as info:
        parse_response(call, status, google_error(status, reason, "the message"), {})
    assert type(info.value) is cls
    assert info.value.http_status == status
    assert info.value.reason == reason
    assert "the message" in str(info.value)


def test_permission_error_names_the_permissions_the_insert_needs() -> None:
    call = API.insert_machine_image(
        "p", {"name": "i"}, source_instance="zones/us-central1-a/instances/i", request_id="r"
    )
    error = api_error(call, 403, google_error(403, "forbidden", "Required permission missing"), {})
    assert "compute.machineImages.create" in str(error)
    assert "compute.instances.useReadOnly" in str(error)


def test_non_json_error_page_is_summarised() -> None:
    call = API.get_machine_image("p", "img")
    error = api_error(call, 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", {"Retry-After": "7"})
    assert isinstance(error, TransientApiError)
    assert "502 Bad Gateway" in str(error)
    assert "<h1>" not in str(error)
    assert error.retry_after == 7.0


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"name": "x", "sta', b"[1, 2]", b'{"status": "DONE"}', b'{"name": 1, "status": "DONE"}'],
)
def test_garbage_success_bodies_are_malformed_response_errors(raw: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_response(API.get_operation("p", "op"), 200, raw, {})


def test_items_must_be_a_list() -> None:
    with pytest.raises(MalformedResponseError, match="items"):
        parse_response(API.list_machine_images("p"), 200, b'{"items": {"a": 1}}', {})


def test_aggregated_items_must_be_an_object() -> None:
    call = API.aggregated_list_instances("p")
    assert parse_response(call, 200, b'{"items": {"zones/us-central1-a": {"instances": []}}}', {})["items"]
    with pytest.raises(MalformedResponseError, match="not an object"):
        parse_response(call, 200, b'{"items": [1]}', {})
    assert call.permissions == ("compute.instances.list",)


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_operation_errors_become_operation_failed_error() -> None:
    raise_for_operation_error({"name": "op", "status": "DONE"})
    with pytest.raises(OperationFailedError) as info:
        raise_for_operation_error(
            {
                "name": "op",
                "status": "DONE",
                "error": {"errors": [{"code": "QUOTA_EXCEEDED", "message": "Quota 'X' exceeded"}]},
                "httpErrorStatusCode": 403,
                "httpErrorMessage": "FORBIDDEN",
            }
        )
    assert info.value.codes == ["QUOTA_EXCEEDED"]
    assert "QUOTA_EXCEEDED: Quota 'X' exceeded" in str(info.value)
    assert "HTTP 403 FORBIDDEN" in str(info.value)


def test_an_empty_error_object_is_still_a_failure() -> None:
    with pytest.raises(OperationFailedError):
        raise_for_operation_error({"name": "op", "status": "DONE", "error": {}})


def test_retry_policy_backoff_and_retry_after() -> None:
    policy = RetryPolicy(max_attempts=4, initial_backoff=1.0, multiplier=2.0, max_backoff=3.0)
    rng = random.Random(0)
    transient = TransientApiError("x")
    for attempt in range(1, 10):
        assert 0 <= policy.delay(attempt, transient, rng) <= min(3.0, 2 ** (attempt - 1))
    assert policy.delay(1, TransientApiError("x", retry_after=5.0), rng) >= 5.0
    assert policy.delay(1, TransientApiError("x", retry_after=500.0), rng) == policy.max_retry_after
    assert policy.should_retry(3, transient)
    assert not policy.should_retry(4, transient)
    assert not policy.should_retry(1, ResourceNotFoundError("x"))
    assert policy.should_retry(1, MalformedResponseError("x"))


def google_error_with_details(code: int, reason: str, details: list[dict]) -> bytes:
    """Google's JSON error with ``error.details`` (google.rpc types), as Compute Engine sends it."""
    message = "the message"
    error = {"code": code, "message": message, "errors": [{"reason": reason, "message": message}], "details": details}
    return json.dumps({"error": error}).encode()


def test_concurrent_operations_quota_is_read_from_error_info_and_retried() -> None:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED",
            "domain": "compute.googleapis.com",
            "metadata": {"quota_metric": "compute.googleapis.com/global_concurrent_operations"},
        },
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "q", "url": "https://q.example"}]},
    ]
    with pytest.raises(ConcurrentOperationsQuotaError) as info:
        parse_response(API.get_machine_image("p", "img"), 403, google_error_with_details(403, "forbidden", details), {})
    error = info.value
    assert [info["reason"] for info in error.details.error_info] == ["CONCURRENT_OPERATIONS_QUOTA_EXCEEDED"]
    assert error.details.help_links == ({"description": "q", "url": "https://q.example"},)
    assert "CONCURRENT_OPERATIONS_QUOTA_EXCEEDED" in str(error) and "https://q.example" in str(error)
    assert "global_concurrent_operations" in str(error)
    assert RetryPolicy().should_retry(20, error, paused=600.0)


def test_an_allocation_quota_fails_at_once_naming_the_quota() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "QUOTA_EXCEEDED", "domain": "compute"},
        {
            "@type": "type.googleapis.com/google.rpc.QuotaInfo",
            "metricName": "compute.googleapis.com/machine_images",
            "limitName": "MACHINE-IMAGES-per-project",
            "limit": 100,
            "dimensions": {"region": "global"},
        },
    ]
    with pytest.raises(QuotaExceededError) as info:
        parse_response(API.get_machine_image("p", "img"), 403, google_error_with_details(403, "forbidden", details), {})
    assert "compute.googleapis.com/machine_images" in str(info.value)
    assert "limit 100 per MACHINE-IMAGES-per-project" in str(info.value)
    assert info.value.details.quota_metrics == ["compute.googleapis.com/machine_images"]
    assert not RetryPolicy().should_retry(1, info.value)


def test_operation_error_details_are_in_the_failure() -> None:
    operation = {
        "name": "op",
        "status": "DONE",
        "error": {
            "errors": [
                {
                    "code": "QUOTA_EXCEEDED",
                    "message": "Quota 'MACHINE_IMAGES' exceeded.",
                    "errorDetails": [
                        {"quotaInfo": {"metricName": "compute.googleapis.com/machine_images", "limit": 10}},
                        {"help": {"links": [{"url": "https://cloud.google.com/compute/quotas"}]}},
                    ],
                }
            ]
        },
    }
    with pytest.raises(OperationFailedError) as info:
        raise_for_operation_error(operation)
    assert "compute.googleapis.com/machine_images (limit 10)" in str(info.value)
    assert "https://cloud.google.com/compute/quotas" in str(info.value)


# ----------------------------------------------------------------------------------------- paging limits


def endless(token_of: Callable[[int], str]) -> tuple[Callable[[str | None], dict], list[str | None]]:
    """A list whose every page names a next one (a misbehaving endpoint); stops the test at 5,000 pages."""
    fetched: list[str | None] = []

    def fetch(token: str | None) -> dict:
        fetched.append(token)
        if len(fetched) > 5000:
            raise AssertionError("followed more than 5,000 pages")
        return {"items": [{"name": f"i{len(fetched)}"}], "nextPageToken": token_of(len(fetched))}

    return fetch, fetched


def test_a_walk_stops_at_the_page_limit() -> None:
    """No page cap: 1,000 pages (and more) were followed."""
    fetch, fetched = endless(lambda n: f"t{n}")
    with pytest.raises(ResponseLimitError, match="1000 pages"):
        list(iter_pages(fetch))
    assert len(fetched) == MAX_PAGES
    fetch, fetched = endless(lambda n: f"t{n}")

    async def afetch(token: str | None) -> dict:
        return fetch(token)

    with pytest.raises(ResponseLimitError, match="1000 pages"):
        asyncio.run(collect_pages(afetch))
    assert len(fetched) == MAX_PAGES


@pytest.mark.parametrize("cycle", [1, 2, 7])
def test_a_repeated_page_token_ends_the_walk(cycle: int) -> None:
    """No check for a repeated page token: a list that cycles was walked to the page cap (or forever)."""
    fetch, fetched = endless(lambda n: f"t{n % cycle}")
    with pytest.raises(ResponseLimitError, match="repeat"):
        list(iter_pages(fetch))
    assert len(fetched) == cycle + 1


def test_a_page_token_that_is_not_text_is_malformed() -> None:
    call = API.list_machine_images("p")
    with pytest.raises(MalformedResponseError, match="nextPageToken"):
        parse_response(call, 200, b'{"items": [], "nextPageToken": {"a": 1}}', {})


def test_list_warnings_are_read_defensively_and_only_no_results_on_page_is_harmless() -> None:
    from airflow_machine_images.api.list_warnings import list_warning, partial_warnings

    assert list_warning({"items": []}) is None
    warned = list_warning(
        {
            "warning": {
                "code": "UNREACHABLE",
                "message": "Scope 'global' is unreachable",
                "data": [{"key": "scope", "value": "global"}],
            }
        }
    )
    assert warned is not None and warned.partial
    assert warned.describe() == "UNREACHABLE: Scope 'global' is unreachable (scope=global)"
    assert list_warning({"warning": "garbage"}).code == "?"  # type: ignore[union-attr]
    assert list_warning({"warning": {"code": 7, "data": "x"}}).partial  # type: ignore[union-attr]
    harmless = list_warning({"warning": {"code": "NO_RESULTS_ON_PAGE"}})
    assert harmless is not None and not harmless.partial
    assert [w.code for w in partial_warnings([harmless, warned, warned])] == ["UNREACHABLE"]


def test_page_walks_collect_every_pages_warning() -> None:
    from airflow_machine_images.api.paging import PageWalk, iter_pages

    pages = {None: {"items": [{"name": "a"}], "nextPageToken": "t", "warning": {"code": "PARTIAL_SUCCESS"}}, "t": {}}
    walk = PageWalk()
    assert [i["name"] for i in iter_pages(lambda token: pages[token], walk=walk)] == ["a"]
    assert [w.code for w in walk.warnings] == ["PARTIAL_SUCCESS"]


def test_operation_warnings_are_logged_redacted_and_garbage_skipped() -> None:
    from airflow_machine_images.logs import log_operation_warnings

    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, msg: str, *args: object) -> None:
            self.lines.append(msg % args)

        def warning(self, msg: str, *args: object) -> None:
            self.lines.append(msg % args)

    key = "A" * 43 + "="  # base64 of 32 bytes: shaped like a rawKey
    log = Log()
    operation = {
        "name": "operation-1",
        "warnings": [
            {"code": "NOT_CRITICAL_ERROR", "message": f"echo {key}", "data": [{"key": "k", "value": "v"}]},
            "junk",
        ],
    }
    assert log_operation_warnings(log, operation) == 1
    assert log.lines[0].startswith("Operation operation-1 warns: NOT_CRITICAL_ERROR: echo ")
    assert key not in log.lines[0] and "(k=v)" in log.lines[0]
    assert log_operation_warnings(log, {"name": "x", "warnings": "nope"}) == 0
