"""A thin client for the Airflow 3 public REST API (``/api/v2``) and the emulator's control endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

#: Seconds for one HTTP request (the API server can be slow while the scheduler is busy on 2 cores).
REQUEST_TIMEOUT = 30.0


class ApiError(AssertionError):
    """An unexpected HTTP answer, with the method, URL, status and body."""


def _check(response: requests.Response, expected: tuple[int, ...]) -> Any:
    if response.status_code not in expected:
        raise ApiError(
            f"{response.request.method} {response.url} -> HTTP {response.status_code} "
            f"(expected {expected}): {response.text[:2000]}"
        )
    return response.json() if response.content else None


class AirflowApi:
    """The public REST API of one API server.

    With ``[core] simple_auth_manager_all_admins`` the server adds an admin token to every request
    itself; if it still answers 401 (another auth manager setup), the client fetches a token from
    ``GET /auth/token`` once and retries.
    """

    def __init__(self, base_url: str) -> None:
        """:param base_url: e.g. ``http://127.0.0.1:8080``."""
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.token_fetched = False

    def _request(self, method: str, path: str, expected: tuple[int, ...], **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        response = self.session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        if response.status_code == 401 and not self.token_fetched:
            self.token_fetched = True
            token = _check(self.session.get(f"{self.base_url}/auth/token", timeout=REQUEST_TIMEOUT), (200, 201))
            self.session.headers["Authorization"] = f"Bearer {token['access_token']}"
            response = self.session.request(method, url, timeout=REQUEST_TIMEOUT, **kwargs)
        return _check(response, expected)

    def get(self, path: str, expected: tuple[int, ...] = (200,), **params: Any) -> Any:
        """GET ``/api/v2`` + ``path`` and return the JSON."""
        return self._request("GET", f"/api/v2{path}", expected, params=params or None)

    def post(self, path: str, body: Any, expected: tuple[int, ...] = (200,)) -> Any:
        """POST JSON to ``/api/v2`` + ``path`` and return the JSON."""
        return self._request("POST", f"/api/v2{path}", expected, json=body)

    def patch(self, path: str, body: Any, expected: tuple[int, ...] = (200,)) -> Any:
        """PATCH JSON to ``/api/v2`` + ``path`` and return the JSON."""
        return self._request("PATCH", f"/api/v2{path}", expected, json=body)

    # ------------------------------------------------------------------ shortcuts

    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health``."""
        result: dict[str, Any] = self.get("/monitor/health")
        return result

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        """Start a manual run now (``logical_date: null``) and return the DAG run."""
        result: dict[str, Any] = self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        return result

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        result: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        return result

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones included (one per map index)."""
        result = self.get(f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances", limit=1000)
        return list(result["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        """Every try of one task instance (history rows and the current one)."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        return list(self.get(f"{path}/tries")["task_instances"])

    def extra_links(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> dict[str, str | None]:
        """The operator extra links of one task instance: name -> URL (None if not stored yet)."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links"
        return dict(self.get(path, map_index=map_index)["extra_links"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int, key: str = "return_value") -> Any:
        """One XCom value (deserialised), or None if there is none."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
        result = self.get(path, expected=(200, 404), map_index=map_index, deserialize=True)
        if result is None or "value" not in result:
            return None
        return result["value"]

    def slot_states(self) -> dict[str, int]:
        """How many task instances of every DAG run are running, queued or deferred right now."""
        states = ("running", "queued", "deferred")
        rows = self.get("/dags/~/dagRuns/~/taskInstances", state=list(states), limit=1000)["task_instances"]
        return {state: sum(1 for row in rows if row["state"] == state) for state in states}

    def pool(self, name: str = "default_pool") -> dict[str, Any]:
        """One pool with its slot counts (occupied, running, queued, deferred, open)."""
        result: dict[str, Any] = self.get(f"/pools/{name}")
        return result

    def event_logs(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit-log rows (``GET /api/v2/eventLogs``) matching exact-match filters."""
        return list(self.get("/eventLogs", limit=1000, **filters)["event_logs"])

    def triggerer_jobs(self) -> list[dict[str, Any]]:
        """Every triggerer job the DB knows, alive or not."""
        return list(self.get("/jobs", job_type="TriggererJob", limit=100)["jobs"])


class EmulatorControl:
    """The emulator's out-of-process control endpoints (``/_emulator/...``)."""

    def __init__(self, base_url: str, project: str) -> None:
        """:param base_url: e.g. ``http://127.0.0.1:8085``. :param project: the default project."""
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.session = requests.Session()

    def _call(self, method: str, path: str, expected: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=REQUEST_TIMEOUT, **kwargs)
        return _check(response, expected)

    def health(self) -> Any:
        """``GET /_emulator/health``."""
        return self._call("GET", "/_emulator/health")

    def requests(self) -> list[dict[str, Any]]:
        """Every recorded API request (action, method, path, query, status, ...), in arrival order."""
        result = self._call("GET", "/_emulator/requests")
        return list(result["requests"] if isinstance(result, dict) else result)

    def machine_images(self) -> list[dict[str, Any]]:
        """Every machine image of the project, whatever its status."""
        result = self._call("GET", "/_emulator/machineImages", params={"project": self.project})
        if isinstance(result, dict):
            return list(result.get("items") or result.get("machineImages") or [])
        return list(result)

    def add_machine_image(self, name: str, source_instance: str, creation_timestamp: str) -> Any:
        """Seed a READY machine image ``name`` of ``source_instance`` (``ZONE/NAME``) made at ``creation_timestamp``."""
        body = {
            "name": name,
            "source_instance": source_instance,
            "project": self.project,
            "creation_timestamp": creation_timestamp,
        }
        return self._call("POST", "/_emulator/machineImages", (200, 201), json=body)

    def add_instance(
        self, instance: str, operation_seconds: float | None = None, labels: dict[str, str] | None = None
    ) -> Any:
        """Create a source instance ``ZONE/NAME`` (imaging it takes ``operation_seconds``, else the default)."""
        body: dict[str, Any] = {"instance": instance, "project": self.project}
        if operation_seconds is not None:
            body["operation_seconds"] = operation_seconds
        if labels is not None:
            body["labels"] = labels
        return self._call("POST", "/_emulator/instances", (200, 201), json=body)

    def inject_fault(self, **fault: Any) -> Any:
        """Queue a scripted fault (``POST /_emulator/faults``), e.g. ``kind="slow", action=..., delay_seconds=...``."""
        return self._call("POST", "/_emulator/faults", (200, 201), json=fault)

    def clear_faults(self) -> Any:
        """Drop every queued fault (``DELETE /_emulator/faults``)."""
        return self._call("DELETE", "/_emulator/faults")
