"""The API agrees with swagger.yaml: schemathesis drives the local gateway from the spec it serves.

One check is left out, ``positive_data_acceptance`` (ST202: "a schema-valid request must be
accepted"): a schema can say that a form part is a file, not that the file must be a decodable
video, nor (in OpenAPI 2) that a form has either a ``clip`` or ``frame`` parts but not both. So
vimo rightly refuses schema-valid random bytes with 415, and mixed parts with 400, both documented.
Every other check runs: no 5xx, documented statuses and content types, response schemas, a 403
without the API key, 405 for methods the spec does not list.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3server import moto_server, s3_bucket  # noqa: F401  (fixtures)
from conftest import serving
from vimo import gateway

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
API_KEY = "schemathesis-key"


@pytest.fixture
def api(s3_bucket):
    with serving(gateway.Gateway(("127.0.0.1", 0), workers=2, api_key=API_KEY)) as url:
        yield url


def test_the_api_behaves_as_its_spec_says(api):
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{api}/swagger.yaml", "--url", api, "--checks", "all",
         "--exclude-checks", "positive_data_acceptance", "--header", f"x-api-key: {API_KEY}",
         "--max-examples", "30", "--seed", "7", "--generation-deterministic", "--request-timeout", "60"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    assert "12 selected / 12 total" in run.stdout, summary


def test_keyed_routes_are_the_specs(api):
    import requests

    assert requests.post(f"{api}/uploads", timeout=10).status_code == 403
    assert requests.post(f"{api}/uploads", headers={"x-api-key": API_KEY}, timeout=10).status_code == 201
    assert requests.get(f"{api}/", timeout=10).status_code == 200  # the page needs no key
    assert requests.request("TRACE", f"{api}/motion", timeout=10).status_code == 405
