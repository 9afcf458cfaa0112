"""The SAM template as deployable: it lints, the lint can fail, and no IAM policy in it
grants a wildcard action or resource."""

import copy
import pathlib
import subprocess
import sys

import pytest
from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
CFN_LINT = pathlib.Path(sys.executable).parent / "cfn-lint"


def lint(path):
    return subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True)


def test_the_template_lints():
    result = lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_template_fails_the_lint(tmp_path):
    broken = TEMPLATE.read_text().replace("MemorySize: 256", "MemorySize: plenty", 1)
    broken = broken.replace("FunctionResponseTypes:", "FunctionResponseType:", 1)
    path = tmp_path / "template.yaml"
    path.write_text(broken)
    result = lint(path)
    assert result.returncode != 0, "cfn-lint accepted a broken template"


def statements(template):
    """Every IAM statement of the template: SAM function policies and IAM resources."""
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {}) or {}
        policies = props.get("Policies", [])
        if isinstance(policies, dict):
            policies = [policies]
        for policy in policies:
            if isinstance(policy, dict) and "Statement" in policy:
                for s in policy["Statement"]:
                    yield name, s
        for policy in props.get("Policies", []) if resource.get("Type") == "AWS::IAM::Role" else []:
            for s in policy.get("PolicyDocument", {}).get("Statement", []):
                yield name, s
        if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for s in props.get("PolicyDocument", {}).get("Statement", []):
                yield name, s


def wildcards(template):
    found = []
    for name, s in statements(template):
        for key in ("Action", "Resource", "NotAction", "NotResource"):
            values = s.get(key, [])
            if not isinstance(values, list):
                values = [values]
            for v in values:
                if isinstance(v, str) and "*" in v:
                    found.append((name, key, v))
    return found


def test_no_policy_grants_a_wildcard():
    template = cfn_yaml.load(str(TEMPLATE))
    assert list(statements(template)), "the functions have policies to check"
    assert wildcards(template) == []


def test_the_wildcard_check_can_fail():
    template = copy.deepcopy(cfn_yaml.load(str(TEMPLATE)))
    template["Resources"]["WorkerFunction"]["Properties"]["Policies"][0]["Statement"].append(
        {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}
    )
    assert wildcards(template) == [
        ("WorkerFunction", "Action", "dynamodb:*"),
        ("WorkerFunction", "Resource", "*"),
    ]


def test_the_worker_reports_partial_batch_failures():
    worker = cfn_yaml.load(str(TEMPLATE))["Resources"]["WorkerFunction"]["Properties"]
    event = worker["Events"]["Work"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in event["ScalingConfig"]
