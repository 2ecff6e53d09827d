"""Translates template.yaml into the CloudFormation template AWS SAM deploys (samtranslator, the
library behind `sam validate` and the AWS::Serverless transform), offline, and prints it as JSON.

Local CodeUri values become S3 URIs, as `sam package` makes them; managed policies are not looked
up (no AWS account). Used by scripts/test.sh for the checks in local/tests/translated_template.rs.

    python scripts/translate-template.py template.yaml > translated.json
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflineManagedPolicies:
    """SAM asks IAM for the ARNs of managed policies named in Policies; this template names none."""

    def load(self):
        return {}


def main(path):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        template = yaml_parse(f.read())
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.setdefault("Properties", {})
        code = properties.get("CodeUri")
        if isinstance(code, str) and not code.startswith("s3://"):
            properties["CodeUri"] = "s3://cafe-artifacts/%s.zip" % logical_id
    parameters = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
    translated = transform(template, parameters, OfflineManagedPolicies())
    json.dump(translated, sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
