"""Retention in template.yaml: the archive bucket (encrypted, public access blocked, TLS only, kept when the stack
goes), the workflow sweep's name for it and its right to write archive objects only. The sweep's IAM is checked with
every function's in test_template.py and test_deploy_policies.py."""

from __future__ import annotations

import json

from local.template import load_template

RESOURCES = load_template()["Resources"]


def test_the_archive_bucket_is_encrypted_private_and_tls_only() -> None:
    bucket = RESOURCES["ArchiveBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"  # the desks' history
    properties = bucket["Properties"]
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    (tls,) = RESOURCES["ArchiveBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert tls["Sid"] == "TlsOnly" and tls["Effect"] == "Deny" and tls["Action"] == "s3:*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert tls["Resource"] == [{"Fn::GetAtt": ["ArchiveBucket", "Arn"]}, {"Fn::Sub": "${ArchiveBucket.Arn}/*"}]


def test_the_workflow_sweep_names_the_bucket_and_may_only_put_archive_objects() -> None:
    sweep = RESOURCES["WorkflowSweepFunction"]["Properties"]
    assert sweep["Environment"]["Variables"]["ARCHIVE_BUCKET"] == {"Ref": "ArchiveBucket"}
    archive = [p["Statement"] for p in sweep["Policies"] if "Statement" in p and "ArchiveBucket" in json.dumps(p)]
    assert archive == [
        [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${ArchiveBucket.Arn}/archive/*"}}]
    ]
