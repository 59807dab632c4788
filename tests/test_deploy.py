"""What can be proved about the AWS deployment without an AWS account.

* template.yaml passes `sam validate` (the SAM translator), `sam validate --lint` and cfn-lint, all
  clean; swagger.yaml is a valid OpenAPI 2.0 document.
* The template says what the deployment promises: a Python 3.12+ function, a private, encrypted,
  expiring bucket, least-privilege permissions, API keys with a throttling usage plan, and routes
  that are the handler's routes, with the same binary media types as the local gateway.
* `sam build` runs (once per session), and its artifact, imported by Python 3.12 from the build
  directory with no site-packages at all, answers a multipart event with a JPEG; it carries only the
  code and the dependencies it needs, and is under Lambda's 250 MB unzipped limit.

The SAM CLI, cfn-lint and openapi-spec-validator live in their own virtualenv (`make sam-setup`,
.venv-sam), whose pins do not have to agree with the dev venv's; VIMO_SAM_VENV points elsewhere.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import body_bytes, gateway_event, header, invoke, multipart_event, write_square_clip

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
SWAGGER = ROOT / "swagger.yaml"
SAM_VENV = Path(os.environ.get("VIMO_SAM_VENV", ROOT / ".venv-sam"))
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit on a function's unzipped code + layers
RUNTIME_DEPENDENCIES = {"av", "numpy", "pillow", "requests_toolbelt", "aws_lambda_powertools",
                        "connected_components_3d", "tzdata",
                        # what those need in turn
                        "requests", "urllib3", "idna", "charset_normalizer", "certifi", "jmespath",
                        "typing_extensions"}


# --- tools ------------------------------------------------------------------------------------------

def tool(name: str) -> str:
    path = SAM_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make sam-setup` (make test does it) to install the SAM CLI, "
                    "cfn-lint and openapi-spec-validator into .venv-sam.")
    return str(path)


def python312() -> str:
    """A real python3.12 (not a pyenv shim that refuses to run): PYTHON312, pyenv's versions, or PATH."""
    candidates = [os.environ.get("PYTHON312", "")]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{root}/versions/3.12*/bin/python3.12"), reverse=True)
    candidates += [shutil.which("python3.12") or ""]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    pytest.fail("No python3.12 found (sam build for the python3.12 runtime needs it): set PYTHON312.")


@pytest.fixture(scope="session")
def sam_env(tmp_path_factory) -> dict:
    """An environment for the SAM tools: offline, no telemetry, fake credentials, python3.12 first on PATH."""
    home = tmp_path_factory.mktemp("aws")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(SAM_CLI_TELEMETRY="0", SAM_CLI_CONTAINER_CONNECTION_TIMEOUT="1",
               AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY="fake", AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", AWS_CONFIG_FILE=str(home / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
               PATH=os.pathsep.join([str(Path(python312()).parent), env.get("PATH", "")]))
    return env


def run(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# --- the template and the API definition, parsed ----------------------------------------------------

class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: !Ref X -> {"Ref": X}, !Sub s -> {"Fn::Sub": s}, ..."""


def _short_form(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _short_form)


@pytest.fixture(scope="session")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


@pytest.fixture(scope="session")
def swagger() -> dict:
    return yaml.safe_load(SWAGGER.read_text())


@pytest.fixture(scope="session")
def resources(template) -> dict:
    return template["Resources"]


# --- the static checkers, all clean -----------------------------------------------------------------

def test_sam_validate_runs_the_translator_cleanly(sam_env):
    result = run([tool("sam"), "validate", "--template-file", str(TEMPLATE)], sam_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_lint_is_clean(sam_env):
    result = run([tool("sam"), "validate", "--lint", "--template-file", str(TEMPLATE)], sam_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_is_clean(sam_env):
    result = run([tool("cfn-lint"), str(TEMPLATE)], sam_env)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")  # warnings too would fail


def test_swagger_is_valid_openapi(sam_env):
    result = run([tool("openapi-spec-validator"), str(SWAGGER)], sam_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("OK")


# --- the API definition -----------------------------------------------------------------------------

def test_binary_media_types_are_the_local_gateways(swagger):
    from vimo.gateway import BINARY_MEDIA_TYPES

    assert swagger["x-amazon-apigateway-binary-media-types"] == list(BINARY_MEDIA_TYPES)
    # JPEG answers go back as binary for curl's default Accept and for an explicit image/jpeg.
    assert {"*/*", "image/*"} <= set(BINARY_MEDIA_TYPES)
    assert {"multipart/form-data", "video/*", "application/octet-stream"} <= set(BINARY_MEDIA_TYPES)


def test_swagger_routes_are_the_handlers_plus_preflights(swagger):
    from vimo.app import ROUTES

    declared = {path: {method.upper() for method in methods if not method.startswith("x-")}
                for path, methods in swagger["paths"].items()}
    assert declared == {path: methods | {"OPTIONS"} for path, methods in ROUTES.items()}


def test_every_method_is_an_aws_proxy_to_the_function_by_sub(swagger):
    for path, methods in swagger["paths"].items():
        for method, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            assert integration["type"] == "aws_proxy", (path, method)  # OPTIONS too: the function answers CORS
            assert integration["httpMethod"] == "POST"
            uri = integration["uri"]["Fn::Sub"]
            assert uri == ("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                           "${VimoFunction.Arn}/invocations")
    assert not re.search(r"\b\d{12}\b", SWAGGER.read_text()), "no hard-coded account id"


def test_api_key_is_required_on_every_route_but_the_page(swagger):
    assert swagger["x-amazon-apigateway-api-key-source"] == "HEADER"
    assert swagger["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    paths = swagger["paths"]
    assert paths["/motion"]["post"]["security"] == [{"api_key": []}]
    assert paths["/uploads"]["post"]["security"] == [{"api_key": []}]
    assert paths["/jobs"]["post"]["security"] == [{"api_key": []}]
    assert paths["/jobs/{id}"]["get"]["security"] == [{"api_key": []}]
    assert paths["/jobs/{id}/montage.jpg"]["get"]["security"] == [{"api_key": []}]
    # Browsers send no key on a preflight; the page itself is public.
    assert not [path for path, item in paths.items() if "security" in item.get("options", {})]
    # The local gateway (with an api_key set) checks the same routes.
    from vimo.gateway import KEYED_ROUTES

    assert KEYED_ROUTES == {(method.upper(), path) for path, item in paths.items()
                            for method, operation in item.items() if "security" in operation}
    assert "security" not in paths["/"]["get"] and "security" not in swagger


def test_responses_are_documented(swagger):
    post = swagger["paths"]["/motion"]["post"]
    assert set(post["produces"]) == {"image/jpeg", "application/json"}
    assert {"200", "400", "403", "413", "415", "429", "500", "502", "504"} <= set(post["responses"])
    for status, response in post["responses"].items():
        if status != "200":
            assert response["schema"] == {"$ref": "#/definitions/Error"}
    assert "montage_url" in swagger["definitions"]["MotionResult"]["properties"]
    # API Gateway's own refusals carry the CORS header, so a browser can read them.
    for name in ("DEFAULT_4XX", "DEFAULT_5XX"):
        gateway_response = swagger["x-amazon-apigateway-gateway-responses"][name]
        assert gateway_response["responseParameters"]["gatewayresponse.header.Access-Control-Allow-Origin"] == "'*'"


# --- the template -----------------------------------------------------------------------------------

def test_the_api_is_swagger_included_and_every_route_may_invoke(resources, swagger):
    api = resources["VimoApi"]
    assert api["Type"] == "AWS::Serverless::Api"
    include = api["Properties"]["DefinitionBody"]["Fn::Transform"]
    assert include == {"Name": "AWS::Include", "Parameters": {"Location": "swagger.yaml"}}
    # Put in swagger.yaml, not here, or plain `sam validate` rejects them.
    assert not {"BinaryMediaTypes", "Auth", "Cors"} & set(api["Properties"])
    events = resources["VimoFunction"]["Properties"]["Events"]
    invokable = {(e["Properties"]["Path"], e["Properties"]["Method"].upper()) for e in events.values()}
    assert all(e["Type"] == "Api" and e["Properties"]["RestApiId"] == {"Ref": "VimoApi"} for e in events.values())
    routed = {(path, method.upper()) for path, methods in swagger["paths"].items() for method in methods}
    assert invokable == routed


def test_function_runtime_code_and_settings(resources):
    function = resources["VimoFunction"]["Properties"]
    version = re.fullmatch(r"python3\.(\d+)", function["Runtime"])
    assert version and int(version[1]) >= 12
    assert function["Handler"] == "vimo.app.lambda_handler"
    assert function["CodeUri"].rstrip("/") == "lambda_function"
    assert 1024 <= function["MemorySize"] <= 3008
    assert function["Timeout"] <= 29  # API Gateway gives up after 29 s
    from vimo.gateway import LAMBDA_TIMEOUT_MS

    assert LAMBDA_TIMEOUT_MS == function["Timeout"] * 1000  # the local gateway gives the same time
    # Lambda shows the function two cores up to 3008 MB; it decodes on as many threads as its
    # memory buys vCPUs (one at 1769 MB), and on every core elsewhere.
    from vimo.config import Settings

    on_lambda = Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function["MemorySize"])})
    assert on_lambda.decoder_threads == max(1, function["MemorySize"] // 1769) == 1
    assert Settings.from_env({}).decoder_threads == 0
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3538", "DECODER_THREADS": "3"}).decoder_threads == 3
    env = function["Environment"]["Variables"]
    assert env["RESULTS_BUCKET"] == resources["ResultsBucket"]["Properties"]["BucketName"]
    assert env["URL_EXPIRY"] == {"Ref": "UrlExpirySeconds"}
    assert env["DEFAULT_DELIVERY"] == {"Ref": "DefaultDelivery"}


def test_results_bucket_is_private_encrypted_and_expiring(resources, template):
    bucket = resources["ResultsBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert "AccessControl" not in bucket and "WebsiteConfiguration" not in bucket
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    [encryption] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = {rule["Id"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    results, uploads = rules["expire-results"], rules["expire-uploads"]
    assert results["Status"] == "Enabled" and results["ExpirationInDays"] == {"Ref": "ResultsExpirationDays"}
    assert "Prefix" not in results and "Filter" not in results  # every object expires
    assert uploads["Status"] == "Enabled" and uploads["Prefix"] == "uploads/" and uploads["ExpirationInDays"] == 1
    assert template["Parameters"]["ResultsExpirationDays"]["Default"] >= 1
    # The bucket policy only denies (plain HTTP); it never grants anything to anyone.
    policy = resources["ResultsBucketPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"] and all(statement["Effect"] == "Deny" for statement in policy["Statement"])


BUCKET_ID = {"Id": {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}}


def bucket_arn(suffix: str = "") -> dict:
    return {"Fn::Sub": [f"arn:${{AWS::Partition}}:s3:::vimo-${{Id}}{suffix}", BUCKET_ID]}


def test_function_may_only_use_its_own_bucket_and_invoke_itself(resources):
    function = resources["VimoFunction"]["Properties"]
    policies = function["Policies"]
    assert len(policies) == 1 and isinstance(policies[0], dict), "no managed or SAM policy templates"
    statements = {statement["Sid"]: statement for statement in policies[0]["Statement"]}
    assert set(statements) == {"ResultsReadWrite", "JobInputsDelete", "ResultsList", "InvokeSelfForSegments",
                               "StartOwnJobs"}
    assert all(statement["Effect"] == "Allow" for statement in statements.values())
    # The bucket is named in advance (see the template: the camera notification's cycle).
    assert resources["ResultsBucket"]["Properties"]["BucketName"] == {"Fn::Sub": ["vimo-${Id}", BUCKET_ID]}
    bucket = statements["ResultsReadWrite"]
    assert sorted(bucket["Action"]) == ["s3:GetObject", "s3:PutObject"] and bucket["Resource"] == bucket_arn("/*")
    assert statements["JobInputsDelete"]["Action"] == "s3:DeleteObject"
    assert statements["JobInputsDelete"]["Resource"] == bucket_arn("/jobs/*")
    assert statements["ResultsList"]["Action"] == "s3:ListBucket" and statements["ResultsList"]["Resource"] == bucket_arn()
    # The segment fan-out may invoke this very function (its fixed name) and nothing else.
    invoke = statements["InvokeSelfForSegments"]
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert function["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-vimo"}
    assert invoke["Resource"]["Fn::Sub"].endswith(":function:${AWS::StackName}-vimo")
    # Jobs: it may start executions of its own state machine (named in advance), of no other.
    jobs = statements["StartOwnJobs"]
    assert jobs["Action"] == "states:StartExecution"
    assert resources["JobsStateMachine"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-jobs"}
    assert jobs["Resource"]["Fn::Sub"].endswith(":stateMachine:${AWS::StackName}-jobs")
    assert function["Environment"]["Variables"]["STATE_MACHINE_ARN"] == jobs["Resource"]
    assert "Role" not in resources["VimoFunction"]["Properties"]
    assert not [r for r in resources.values() if r["Type"] in ("AWS::IAM::Role", "AWS::IAM::Policy",
                                                               "AWS::IAM::ManagedPolicy")]


def test_the_state_machine_may_invoke_the_function_and_nothing_else(resources):
    machine = resources["JobsStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"] == {"VimoFunctionArn": {"Fn::GetAtt": ["VimoFunction", "Arn"]}}
    [policy] = machine["Policies"]
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "lambda:InvokeFunction"
    assert statement["Resource"] == [{"Fn::GetAtt": ["VimoFunction", "Arn"]}, {"Fn::Sub": "${VimoFunction.Arn}:*"}]
    # plan -> Map over the segments (each the function itself, retried) -> merge; no ResultWriter:
    # each segment writes its own result.
    states = machine["Definition"]["States"]
    assert machine["Definition"]["StartAt"] == "Plan" and states["Plan"]["Next"] == "Segments"
    segments = states["Segments"]
    assert segments["Type"] == "Map" and "ResultWriter" not in segments and segments["Next"] == "Merge"
    segment = segments["ItemProcessor"]["States"]["Segment"]
    assert segment["Parameters"]["FunctionName"] == "${VimoFunctionArn}" and segment["Retry"]
    tasks = [state for state in states.values() if state["Type"] == "Task"]
    assert all(task["Parameters"]["FunctionName"] == "${VimoFunctionArn}" for task in tasks + [segment])


def test_clips_under_incoming_invoke_the_function_and_nothing_else_does(resources):
    bucket = resources["ResultsBucket"]
    [notification] = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"}]}}
    assert notification["Function"] == {"Fn::GetAtt": ["VimoFunction", "Arn"]}
    from vimo.cameras import INCOMING, RESULTS

    assert INCOMING == "incoming/" and not RESULTS.startswith(INCOMING)  # a result never triggers a job
    # S3 may invoke the function for this bucket of this account only; the permission exists first.
    permission = resources["IncomingClipsPermission"]["Properties"]
    assert permission == {"Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "VimoFunction"},
                          "Principal": "s3.amazonaws.com", "SourceAccount": {"Ref": "AWS::AccountId"},
                          "SourceArn": bucket_arn()}
    assert bucket["DependsOn"] == "IncomingClipsPermission"


def test_api_key_and_usage_plan_throttle(resources):
    assert resources["VimoApiKey"]["Type"] == "AWS::ApiGateway::ApiKey"
    assert resources["VimoApiKey"]["Properties"]["Enabled"] is True
    plan = resources["VimoUsagePlan"]["Properties"]
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "VimoApi"}, "Stage": {"Ref": "VimoApi.Stage"}}]
    assert plan["Throttle"] == {"RateLimit": {"Ref": "ThrottleRateLimit"}, "BurstLimit": {"Ref": "ThrottleBurstLimit"}}
    assert plan["Quota"]["Period"] == "DAY"
    link = resources["VimoUsagePlanKey"]["Properties"]
    assert link == {"KeyId": {"Ref": "VimoApiKey"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "VimoUsagePlan"}}


def test_parameters_have_defaults_and_outputs_say_where_things_are(template):
    for name, parameter in template["Parameters"].items():
        assert "Default" in parameter and parameter.get("Description"), name
    outputs = template["Outputs"]
    assert "${VimoApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}/" in outputs["ApiUrl"]["Value"]["Fn::Sub"]
    assert outputs["MotionEndpoint"]["Value"]["Fn::Sub"].endswith("/${StageName}/motion")
    assert outputs["ResultsBucketName"]["Value"] == {"Ref": "ResultsBucket"}
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "VimoApiKey"}


# --- sam build and its artifact ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def sam_build(sam_env, tmp_path_factory) -> dict:
    """`sam build`, once per session, into a temporary directory (the repo's .aws-sam is left alone)."""
    build_dir = tmp_path_factory.mktemp("sam-build") / "build"
    started = time.monotonic()
    result = run(["nice", tool("sam"), "build", "--template-file", str(TEMPLATE), "--build-dir", str(build_dir)],
                 sam_env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"dir": build_dir, "function": build_dir / "VimoFunction", "seconds": time.monotonic() - started}


def unzipped_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def test_sam_build_artifact_is_under_lambdas_limit(sam_build, capsys):
    size = unzipped_size(sam_build["function"])
    with capsys.disabled():
        print(f"\n[sam build] {sam_build['seconds']:.0f} s; VimoFunction unzipped: {size / 1e6:.1f} MB "
              f"({size / LAMBDA_UNZIPPED_LIMIT:.0%} of Lambda's 250 MB limit)")
    assert size < LAMBDA_UNZIPPED_LIMIT


def test_sam_build_artifact_holds_the_code_and_only_its_dependencies(sam_build):
    function = sam_build["function"]
    top = {p.name for p in function.iterdir()}
    packages = {re.sub(r"-[^-]+\.(dist|data)-info$", "", name).lower().replace("-", "_")
                for name in top if name.endswith(".dist-info")}
    assert packages == RUNTIME_DEPENDENCIES
    assert not {"boto3", "botocore", "s3transfer"} & packages  # the runtime has them
    assert not {"tests", "conftest.py", "test_data", "bench", ".venv", ".venv-sam", "template.yaml", "swagger.yaml",
                "Makefile", "pyproject.toml", ".git"} & top
    code = function / "vimo"
    junk = [p for p in code.rglob("*") if p.name in ("__pycache__", ".pytest_cache") or p.suffix in (".pyc", ".egg-info")]
    assert not junk and not list(function.glob("*.egg-info"))
    ours = {p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()}
    repo = {p.relative_to(ROOT / "lambda_function" / "vimo").as_posix()
            for p in (ROOT / "lambda_function" / "vimo").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert ours == repo
    # Wheels for the runtime: CPython 3.12 on x86_64 Linux.
    assert list(function.glob("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so"))


def test_built_template_points_at_the_artifact_and_the_api_definition(sam_build):
    built = yaml.load((sam_build["dir"] / "template.yaml").read_text(), Loader=CfnLoader)
    resources = built["Resources"]
    assert resources["VimoFunction"]["Properties"]["CodeUri"] == "VimoFunction"
    location = resources["VimoApi"]["Properties"]["DefinitionBody"]["Fn::Transform"]["Parameters"]["Location"]
    assert (sam_build["dir"] / location).resolve() == SWAGGER


ARTIFACT_RUNNER = r"""
import json, sys
build, event_file, answer_file = sys.argv[1:4]
sys.path.insert(0, build)
from vimo.app import lambda_handler
import av, numpy, PIL
for module in (sys.modules["vimo"], av, numpy, PIL):
    assert module.__file__.startswith(build), module.__file__

class Context:
    function_name = "vimo"; function_version = "$LATEST"; memory_limit_in_mb = 1769
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:vimo"; aws_request_id = "artifact-test"
    def get_remaining_time_in_millis(self): return 29000

answer = lambda_handler(json.load(open(event_file)), Context())
answer["python"] = list(sys.version_info[:2])
answer["boto3_importable"] = __import__("importlib.util").util.find_spec("boto3") is not None
json.dump(answer, open(answer_file, "w"))
"""


def test_sam_build_artifact_answers_a_multipart_event_with_a_jpeg(sam_build, sam_env, tmp_path):
    clip = write_square_clip(tmp_path / "square.mp4", seconds=3.0, moving=((1.0, 2.0),), size=(160, 120))
    event_file, answer_file = tmp_path / "event.json", tmp_path / "answer.json"
    event_file.write_text(json.dumps(multipart_event([("clip", ("square.mp4", clip.read_bytes(), "video/mp4"))])))
    # -I -S: no user site, no site-packages, no PYTHON* variables: only the artifact and the stdlib.
    result = subprocess.run([python312(), "-I", "-S", "-c", ARTIFACT_RUNNER, str(sam_build["function"]),
                             str(event_file), str(answer_file)], env=sam_env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(answer_file.read_text())
    assert answer["python"] == [3, 12] and answer["boto3_importable"] is False
    assert answer["statusCode"] == 200, (body_bytes(answer)[:2000], result.stdout[-6000:])
    assert header(answer, "Content-Type") == "image/jpeg"
    assert header(answer, "X-Motion-Events") == "1"
    assert answer["isBase64Encoded"] is True
    assert body_bytes(answer)[:3] == b"\xff\xd8\xff"


def test_the_function_answers_the_preflights_swagger_sends_it(swagger):
    """OPTIONS goes to the function (aws_proxy, not a MOCK that "*/*" would break): it must answer CORS."""
    for path, methods in swagger["paths"].items():
        event = gateway_event(method="OPTIONS", path=path, headers={
            "Origin": "https://example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key"})
        answer = invoke(event)
        assert answer["statusCode"] in (200, 204), (path, answer)
        assert header(answer, "Access-Control-Allow-Origin") == "*"
        allowed = {h.strip().lower() for h in header(answer, "Access-Control-Allow-Headers").split(",")}
        assert {"x-api-key", "content-type"} <= allowed
