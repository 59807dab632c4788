"""moto's S3 in server mode, over real HTTP on 127.0.0.1, for tests that need an S3 endpoint.

Import the fixtures into a test module (``from s3server import moto_server, s3_bucket``). ``s3_bucket``
points boto3 at the server through the standard ``AWS_ENDPOINT_URL`` (as a deployment pointing at
any S3-compatible store would), with fake credentials and a region, creates a fresh bucket, names it
in ``RESULTS_BUCKET``, and undoes all of it afterwards; the server stops at the end of the session.
"""

from __future__ import annotations

import dataclasses
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"


@dataclasses.dataclass
class Bucket:
    name: str
    endpoint: str
    region: str
    access_key: str
    secret_key: str
    client: object


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on a free port of 127.0.0.1 (the OS picks it); yields its base URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server, monkeypatch, tmp_path) -> Bucket:
    """A new, empty bucket on the moto server, with the environment set up to reach it."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    # Nothing from a developer's ~/.aws may leak in.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    name = f"vimo-results-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RESULTS_BUCKET", name)
    client = boto3.session.Session().client("s3", endpoint_url=moto_server, region_name=REGION,
                                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=name)
    yield Bucket(name, moto_server, REGION, ACCESS_KEY, SECRET_KEY, client)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)
