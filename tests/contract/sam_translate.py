"""Print template.yaml as CloudFormation sees it after the SAM transform: run with .venv-sam's Python, which has
aws-sam-translator (the version `sam validate`, `sam build` and `sam deploy` use). Offline: code locations are
replaced by S3 placeholders as `sam package` would, and no managed policy is looked up by name.

    .venv-sam/bin/python tests/contract/sam_translate.py template.yaml > translated.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# The translator asks for a region even with the pseudo parameters given (no AWS call is made).
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PARAMETERS = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::AccountId": "123456789012"}
CODE_KEYS = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


class NoLookups(ManagedPolicyLoader):  # type: ignore[misc]
    """The template names managed policies by ARN only; a name would need IAM, which the tests never call."""

    def __init__(self) -> None:
        pass

    def load(self) -> dict[str, str]:
        return {}


def translated(path: Path) -> dict[str, Any]:
    template = yaml_parse(path.read_text())
    # AWS::LanguageExtensions runs in CloudFormation before SAM; SAM's own transform is what expands the policies.
    template["Transform"] = "AWS::Serverless-2016-10-31"
    for name, resource in template["Resources"].items():
        key = CODE_KEYS.get(resource["Type"])
        if key:
            resource["Properties"][key] = f"s3://packaged/{name}.zip"
    result: dict[str, Any] = transform(template, PARAMETERS, NoLookups())
    return result


if __name__ == "__main__":
    json.dump(translated(Path(sys.argv[1])), sys.stdout, indent=1)
