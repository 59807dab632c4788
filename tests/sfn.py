"""template.yaml's jobs state machine, executed by moto's Step Functions interpreter (moto's server on
127.0.0.1, no Docker), each Lambda task wired to vimo's real handler in this process.

moto runs a state machine's states when ``execute_state_machine`` is on; a Lambda task then invokes
the function through moto's Lambda API, which would run the code in Docker. Here that one step is
replaced: ``LambdaFunction._invoke_lambda`` calls ``vimo.app.lambda_handler`` with the event, as
Lambda would, and hands its answer (or its crash, as a function error) back to the interpreter.
Everything else (the ASL definition as written in template.yaml, Map, Retry, Catch, the payloads)
is moto's. ``fail_once`` makes chosen invocations crash once, to see a retry.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace
from unittest import mock
from urllib.parse import urlsplit

import boto3
import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]


def machine_definition(function_arn: str) -> dict:
    """The state machine's Definition from template.yaml, with its substitutions made."""
    from test_deploy import CfnLoader

    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
    machine = template["Resources"]["JobsStateMachine"]["Properties"]
    text = json.dumps(machine["Definition"])
    for name in machine["DefinitionSubstitutions"]:
        text = text.replace("${%s}" % name, function_arn)
    return json.loads(text)


@contextlib.contextmanager
def emulated(moto_server: str, region: str = "us-east-1"):
    """The state machine and a function to run it, created in moto, the Lambda task wired to the
    handler; yields ``(state_machine_arn, calls, fail_once)``. The caller points vimo at it
    (STATE_MACHINE_ARN, AWS_ENDPOINT_URL) and at moto's port (MOTO_PORT, where the interpreter
    sends its Lambda calls)."""
    import moto.awslambda.models as lambda_models

    from vimo.gateway import LambdaContext

    assert requests.post(f"{moto_server}/moto-api/config",
                         json={"stepfunctions": {"execute_state_machine": True}}, timeout=10).ok
    calls: list[dict] = []
    spans: list[tuple[str, float, float]] = []  # (step, started, ended) of each invocation, monotonic
    crash: dict = {}
    lock = threading.Lock()

    def invoke(function, event=None):
        from vimo.app import lambda_handler

        event = json.loads(event) if isinstance(event, str) else event
        with lock:
            calls.append(event)
            step = event.get("vimo_job", {})
            key = (step.get("step"), (step.get("segment") or {}).get("index"))
            crashing = crash.pop(key, False)
        started = time.monotonic()
        try:
            if crashing:
                raise RuntimeError(f"injected crash of {key}")
            return json.dumps(lambda_handler(event, LambdaContext(str(uuid.uuid4()), 29_000))), False, ""
        except Exception as exc:  # what Lambda answers for an unhandled exception
            return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}), True, ""
        finally:
            spans.append((str(key[0]), started, time.monotonic()))

    def client(service):
        return boto3.session.Session().client(service, endpoint_url=moto_server, region_name=region)

    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": ["lambda.amazonaws.com",
                                                                               "states.amazonaws.com"]}}]}
    name = f"vimo-{uuid.uuid4().hex[:8]}"
    role = client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("vimo/__init__.py", "")  # never run: the handler is called in this process
    function = client("lambda").create_function(FunctionName=name, Runtime="python3.12", Role=role,
                                                Handler="vimo.app.lambda_handler", Code={"ZipFile": code.getvalue()},
                                                Timeout=29, MemorySize=1769)["FunctionArn"]
    machine = client("stepfunctions").create_state_machine(
        name=f"{name}-jobs", definition=json.dumps(machine_definition(function)), roleArn=role)["stateMachineArn"]
    try:
        with mock.patch.object(lambda_models.LambdaFunction, "_invoke_lambda", invoke):
            yield SimpleNamespace(arn=machine, calls=calls, spans=spans, client=client,
                                  fail_once=lambda step, index=None: crash.__setitem__((step, index), True))
    finally:
        requests.post(f"{moto_server}/moto-api/config", json={"stepfunctions": {"execute_state_machine": False}},
                      timeout=10)


@pytest.fixture
def step_functions(moto_server, s3_bucket, monkeypatch):
    """The state machine created in moto and named in STATE_MACHINE_ARN, as template.yaml sets it."""
    monkeypatch.setenv("MOTO_PORT", str(urlsplit(moto_server).port))
    with emulated(moto_server, s3_bucket.region) as machine:
        monkeypatch.setenv("STATE_MACHINE_ARN", machine.arn)
        yield machine
