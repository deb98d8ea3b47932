"""``[machine_images] allowed_endpoints``: its entries, and which endpoints they allow."""

from __future__ import annotations

import pytest

from airflow_machine_images.config import DEFAULT_ALLOWED_ENDPOINTS
from airflow_machine_images.validation import MachineImageValidationError
from airflow_machine_images.validation.endpoints import endpoint_is_allowed, parse_allowed_endpoints

DEFAULT = parse_allowed_endpoints(DEFAULT_ALLOWED_ENDPOINTS, "allowed_endpoints")


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://compute.googleapis.com",
        "https://compute.googleapis.com:443/compute/beta",
        "https://COMPUTE.googleapis.com",
        "https://www.googleapis.com",  # where the API's selfLinks point
        "https://compute.us-central1.rep.googleapis.com",  # regional ("API endpoint types")
        "https://compute.us-central1.p.rep.googleapis.com",  # private regional
        "https://us-central1-compute.googleapis.com",  # locational
        "https://compute-backups.p.googleapis.com",  # Private Service Connect
        "http://127.0.0.1:8085",
        "http://localhost:1",
        "https://[::1]:8443",
        "http://127.9.9.9",
    ],
)
def test_the_default_allows_googles_api_hosts_over_https_and_loopback(endpoint: str) -> None:
    assert endpoint_is_allowed(endpoint, DEFAULT)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://compute.googleapis.com",  # https only
        "https://compute.googleapis.com:8443",  # another port
        "https://googleapis.com",  # the wildcard needs a label
        "https://googleapis.com.evil.example",
        "https://compute.googleapis.com.evil.example",
        "https://evilgoogleapis.com",
        "https://attacker.example",
        "http://10.0.0.1:8085",
        "http://localhost.attacker.example",
        "http://127.0.0.1.nip.io",
        "ftp://127.0.0.1",
    ],
)
def test_the_default_refuses_everything_else(endpoint: str) -> None:
    assert not endpoint_is_allowed(endpoint, DEFAULT)


def test_entries_name_a_scheme_a_host_and_a_port() -> None:
    allowed = parse_allowed_endpoints(
        " https://compute-psc.p.googleapis.com , http://10.1.2.3:8080, https://*.corp.example:*, ", "x"
    )
    assert endpoint_is_allowed("https://compute-psc.p.googleapis.com", allowed)
    assert not endpoint_is_allowed("https://compute.googleapis.com", allowed)  # not listed: not allowed
    assert endpoint_is_allowed("http://10.1.2.3:8080", allowed)
    assert not endpoint_is_allowed("http://10.1.2.3", allowed)
    assert endpoint_is_allowed("https://a.b.corp.example:9443", allowed)
    assert not endpoint_is_allowed("http://127.0.0.1:8085", allowed)  # loopback only when listed
    assert parse_allowed_endpoints("", "x") == ()  # nothing is allowed


@pytest.mark.parametrize(
    "text",
    [
        "compute.googleapis.com",
        "ftp://compute.googleapis.com",
        "https://",
        "https://a b",
        "https://compute.googleapis.com:99999",
        "https://compute.googleapis.com/compute/v1",
        "https://*",
        "https://a.*.example",
        "https://user@compute.googleapis.com",
        "loopback, *.googleapis.com",
        5,
    ],
)
def test_a_malformed_entry_is_refused_naming_the_option_and_the_rule(text: object) -> None:
    with pytest.raises(MachineImageValidationError, match=r"Invalid \[machine_images\] allowed_endpoints: must be"):
        parse_allowed_endpoints(text, "[machine_images] allowed_endpoints")
