"""Email in in template.yaml: the inbound bucket (encrypted, public access blocked, TLS only, SES of this account
writing under inbound/ only), the receipt rule set and rule for InboundEmailDomain (nothing without one: S3 first,
then the function), SES's permission to invoke the function for that rule only, and the function's environment.
Its IAM is checked with every function's in test_template.py and test_deploy_policies.py."""

from __future__ import annotations

from local.template import load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
FUNCTION = RESOURCES["EmailInboundFunction"]["Properties"]


def test_the_bucket_is_encrypted_private_and_tls_only() -> None:
    bucket = RESOURCES["InboundEmailBucket"]
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Retain"  # customers' mail
    properties = bucket["Properties"]
    (encryption,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    statements = {
        s["Sid"]: s for s in RESOURCES["InboundEmailBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    }
    assert set(statements) == {"TlsOnly", "SesStoresInboundMail"}
    tls = statements["TlsOnly"]
    assert tls["Effect"] == "Deny" and tls["Action"] == "s3:*"
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ses = statements["SesStoresInboundMail"]
    assert ses["Principal"] == {"Service": "ses.amazonaws.com"} and ses["Action"] == "s3:PutObject"
    assert ses["Resource"] == {"Fn::Sub": "${InboundEmailBucket.Arn}/inbound/*"}
    assert ses["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_receipt_rule_stores_then_invokes_and_only_with_a_domain() -> None:
    assert TEMPLATE["Parameters"]["InboundEmailDomain"]["Default"] == ""
    assert TEMPLATE["Conditions"]["ReceivesEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "InboundEmailDomain"}, ""]}]}
    for name in ("InboundEmailRuleSet", "InboundEmailRule", "EmailInboundPermission"):
        assert RESOURCES[name]["Condition"] == "ReceivesEmail", name
    rule = RESOURCES["InboundEmailRule"]
    assert set(rule["DependsOn"]) == {"InboundEmailBucketPolicy", "EmailInboundPermission"}
    properties = rule["Properties"]
    assert properties["RuleSetName"] == {"Ref": "InboundEmailRuleSet"}
    body = properties["Rule"]
    assert body["Enabled"] is True and body["ScanEnabled"] is True
    assert body["Recipients"] == [{"Ref": "InboundEmailDomain"}]
    store, invoke = body["Actions"]  # in this order: the function reads what the S3 action stored
    assert store == {"S3Action": {"BucketName": {"Ref": "InboundEmailBucket"}, "ObjectKeyPrefix": "inbound/"}}
    assert invoke == {
        "LambdaAction": {"FunctionArn": {"Fn::GetAtt": ["EmailInboundFunction", "Arn"]}, "InvocationType": "Event"}
    }
    permission = RESOURCES["EmailInboundPermission"]["Properties"]
    assert permission["Principal"] == "ses.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"]["Fn::Sub"].endswith(
        f":receipt-rule-set/${{InboundEmailRuleSet}}:receipt-rule/{body['Name']}"
    )


def test_the_function_reads_where_ses_writes_and_is_retried() -> None:
    variables = FUNCTION["Environment"]["Variables"]
    assert variables["INBOUND_EMAIL_BUCKET"] == {"Ref": "InboundEmailBucket"}
    assert variables["INBOUND_EMAIL_PREFIX"] == "inbound/" and variables["EMAIL_ATTACHMENTS_PREFIX"] == "attachments/"
    assert int(variables["INBOUND_EMAIL_MAX_BYTES"]) <= 40 * 1024 * 1024  # SES stores at most 40 MB
    assert FUNCTION["EventInvokeConfig"]["MaximumRetryAttempts"] == 2
    assert FUNCTION["LoggingConfig"] == {"LogGroup": {"Ref": "EmailInboundFunctionLogGroup"}}
    assert "Events" not in FUNCTION  # no route: only SES invokes it
    tickets = RESOURCES["TicketsFunction"]["Properties"]["Environment"]["Variables"]
    assert tickets["INBOUND_EMAIL_BUCKET"] == {"Ref": "InboundEmailBucket"}  # the original of a message
