"""List calls of the emulator: the filter language, orderBy and pagination, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_machine_images.emulator import ComputeEngineEmulator
from airflow_machine_images.emulator.filters import FilterError, compile_filter
from tests.integration.test_emulator import PROJECT, Api, google_error

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emu() -> Any:
    """Seeded images: web-1..3 (managed by airflow), db-1 (env prod), old-1 (2020), broken (INVALID)."""
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3, seed=3) as emulator:
        emulator.add_instance("us-central1-a/web-1", disk_size_gb=10)
        for n, stamp in ((1, "2024-03-01T00:00:00Z"), (2, "2024-03-02T00:00:00Z"), (3, "2024-03-03T00:00:00Z")):
            emulator.add_machine_image(
                f"web-{n}", creation_timestamp=stamp, labels={"managed-by": "airflow", "nightly": "true"}
            )
        emulator.add_machine_image("db-1", creation_timestamp="2024-02-01T00:00:00Z", labels={"env": "prod"})
        emulator.add_machine_image("old-1", creation_timestamp="2020-01-01T00:00:00Z", total_storage_bytes=5)
        emulator.add_machine_image("broken", creation_timestamp="2023-01-01T00:00:00Z", status="INVALID")
        yield emulator


@pytest.fixture
def api(emu: ComputeEngineEmulator) -> Api:
    emu.clear_requests()
    return Api(emu)


def names(api: Api, **params: Any) -> list[str]:
    listing = api.ok("GET", "global/machineImages", params=params)
    assert listing["kind"] == "compute#machineImageList"
    return [item["name"] for item in listing.get("items", [])]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", ["broken", "db-1", "old-1", "web-1", "web-2", "web-3"]),
        ("labels.managed-by = airflow", ["web-1", "web-2", "web-3"]),
        ('labels.managed-by = "airflow"', ["web-1", "web-2", "web-3"]),
        ("labels.managed-by='airflow'", ["web-1", "web-2", "web-3"]),
        ("labels.managed-by != airflow", ["broken", "db-1", "old-1"]),
        ("labels.env:*", ["db-1"]),
        ("labels:env", ["db-1"]),
        ("name = web-2", ["web-2"]),
        ("name:web-*", ["web-1", "web-2", "web-3"]),
        ("status = INVALID", ["broken"]),
        ("status != READY", ["broken"]),
        ('(name = "web-1") OR (name = "db-1") OR (name = "nope")', ["db-1", "web-1"]),
        ("name = web-1 OR name = web-3", ["web-1", "web-3"]),
        ("(labels.managed-by = airflow) (name != web-2)", ["web-1", "web-3"]),
        ("labels.managed-by = airflow AND name != web-2", ["web-1", "web-3"]),
        ("(name = web-1 OR name = db-1) AND labels.env = prod", ["db-1"]),
        ("NOT labels.managed-by = airflow", ["broken", "db-1", "old-1"]),
        ("-labels.managed-by:*", ["broken", "db-1", "old-1"]),
        ('creationTimestamp < "2024-01-01T00:00:00Z"', ["broken", "old-1"]),
        ("creationTimestamp > 2024-03-01T12:00:00+00:00", ["web-2", "web-3"]),
        ("totalStorageBytes < 100", ["old-1"]),
        ("labels.nightly = true", ["web-1", "web-2", "web-3"]),
        ("name eq 'web-.*'", ["web-1", "web-2", "web-3"]),
        ("name eq web-[12]", ["web-1", "web-2"]),
        ('name ne "web-.*"', ["broken", "db-1", "old-1"]),
        ("name eq web", []),  # the expression must match the whole value
        ("(name eq 'web-.*') (labels.nightly eq true)", ["web-1", "web-2", "web-3"]),
        ("(name eq '.*-1') (labels.env ne prod)", ["old-1", "web-1"]),
    ],
)
def test_filters(api: Api, expression: str, expected: list[str]) -> None:
    assert names(api, filter=expression) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "name =",
        "name",
        "(name = a",
        "name = a)",
        "name ~ a",
        "name = 'unterminated",
        "name eq a OR name eq b",
        "(name eq a) (status = READY)",
        "name eq '('",
        "AND name = a",
        "()",
    ],
)
def test_unparseable_filters_are_400_invalid(api: Api, expression: str) -> None:
    response = api.call("GET", "global/machineImages", params={"filter": expression})
    assert "filter" in google_error(response, 400, "invalid")


def test_a_hundred_term_or_chain_is_exact_and_fast(emu: ComputeEngineEmulator) -> None:
    with ComputeEngineEmulator(default_project=PROJECT) as big:
        big.add_instance("us-central1-a/web-1")
        for n in range(300):
            big.add_machine_image(f"img-{n:03d}")
        api = Api(big)
        wanted = [f"img-{n:03d}" for n in range(0, 300, 3)] + ["missing-1"]
        expression = " OR ".join(f'(name = "{name}")' for name in wanted)
        started = time.monotonic()
        listed = names(api, filter=expression)
        assert listed == wanted[:-1]
        assert time.monotonic() - started < 1.0


def test_pagination_walks_every_page_with_next_page_tokens(api: Api) -> None:
    pages: list[list[str]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"maxResults": 4, "filter": "status = READY"}
        if token:
            params["pageToken"] = token
        listing = api.ok("GET", "global/machineImages", params=params)
        pages.append([item["name"] for item in listing["items"]])
        token = listing.get("nextPageToken")
        if not token:
            break
    assert pages == [["db-1", "old-1", "web-1", "web-2"], ["web-3"]]
    assert api.emu.count("machineImages.list") == 2


def test_list_envelope_and_empty_results(api: Api) -> None:
    listing = api.ok("GET", "global/machineImages", params={"filter": "name = nothing"})
    assert listing == {
        "kind": "compute#machineImageList",
        "id": f"projects/{PROJECT}/global/machineImages",
        "selfLink": f"https://www.googleapis.com/compute/beta/projects/{PROJECT}/global/machineImages",
    }  # like the real API: no "items" key when nothing matches


def test_bad_list_parameters(api: Api) -> None:
    first = api.ok("GET", "global/machineImages", params={"maxResults": 2})
    token = first["nextPageToken"]
    other_filter = api.call("GET", "global/machineImages", params={"pageToken": token, "filter": "name = x"})
    google_error(other_filter, 400, "invalid")
    google_error(api.call("GET", "global/machineImages", params={"pageToken": "garbage"}), 400, "invalid")
    google_error(api.call("GET", "global/machineImages", params={"maxResults": 501}), 400, "invalid")
    google_error(api.call("GET", "global/machineImages", params={"maxResults": "ten"}), 400, "invalid")
    google_error(api.call("GET", "global/machineImages", params={"orderBy": "name sideways"}), 400, "invalid")
    assert len(api.ok("GET", "global/machineImages", params={"maxResults": 0})["items"]) == 6


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("creationTimestamp desc", ["web-3", "web-2", "web-1", "db-1", "broken", "old-1"]),
        ("creationTimestamp", ["old-1", "broken", "db-1", "web-1", "web-2", "web-3"]),
        ("name", ["broken", "db-1", "old-1", "web-1", "web-2", "web-3"]),
        ("name desc", ["web-3", "web-2", "web-1", "old-1", "db-1", "broken"]),
    ],
)
def test_order_by(api: Api, order_by: str, expected: list[str]) -> None:
    assert names(api, orderBy=order_by) == expected


def test_order_by_pages_consistently(api: Api) -> None:
    first = api.ok("GET", "global/machineImages", params={"orderBy": "creationTimestamp desc", "maxResults": 3})
    second = api.ok(
        "GET",
        "global/machineImages",
        params={"orderBy": "creationTimestamp desc", "maxResults": 3, "pageToken": first["nextPageToken"]},
    )
    listed = [i["name"] for i in first["items"] + second["items"]]
    assert listed == ["web-3", "web-2", "web-1", "db-1", "broken", "old-1"]
    assert "nextPageToken" not in second


def test_operations_list_coalesces_many_waits_into_one_call() -> None:
    with ComputeEngineEmulator(default_project=PROJECT, operation_seconds=0.3) as emu:
        emu.add_instance("us-central1-a/web-1")
        api = Api(emu)
        operations = [api.insert_ok(f"img-{n}")["name"] for n in range(5)]
        expression = " OR ".join(f'(name = "{name}")' for name in operations[:3])
        listing = api.ok("GET", "global/operations", params={"filter": expression})
        assert listing["kind"] == "compute#operationList"
        assert listing["id"] == f"projects/{PROJECT}/global/operations"
        assert sorted(op["name"] for op in listing["items"]) == sorted(operations[:3])
        time.sleep(0.35)
        done = api.ok("GET", "global/operations", params={"filter": "status = DONE", "maxResults": 2})
        assert len(done["items"]) == 2 and "nextPageToken" in done
        assert names_of(api, "operationType = insert") == sorted(operations)
        google_error(api.call("GET", "global/operations", params={"filter": "name = ("}), 400, "invalid")


def names_of(api: Api, expression: str) -> list[str]:
    listing = api.ok("GET", "global/operations", params={"filter": expression})
    return sorted(op["name"] for op in listing.get("items", []))


def test_filter_compiler_directly() -> None:
    resource = {"name": "web-1", "labels": {"a": "b"}, "guestFlush": True, "size": 10, "locations": ["us", "eu"]}
    assert compile_filter("guestFlush = true")(resource)
    assert not compile_filter("guestFlush = false")(resource)
    assert compile_filter("size > 9 AND size <= 10 AND size >= 10")(resource)
    assert compile_filter("locations = eu")(resource) and compile_filter("locations:us")(resource)
    assert compile_filter("missing != x")(resource) and not compile_filter("missing = x")(resource)
    assert compile_filter("missing ne x")(resource) and not compile_filter("missing:*")(resource)
    assert compile_filter('name = "web-1" OR labels.a = c')(resource)
    assert compile_filter(r"name eq 'web-\d'")(resource)
    assert compile_filter("NOT (name = x OR name = y)")(resource)
    with pytest.raises(FilterError):
        compile_filter("(" * 100 + "name = a" + ")" * 100)
