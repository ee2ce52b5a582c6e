"""The roots a connection from a secret trusts (support/certs/aws-database-roots.pem, see its README)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import certifi
from cryptography import x509
from cryptography.x509.oid import NameOID

from support.db.secrets import DATABASE_CA_BUNDLE

RDS_BUNDLE_SHA256 = "e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3"
RDS_BUNDLE_BYTES = 165_408
ROOT_CA_NAME = re.compile(r"Amazon RDS (Preview |Beta )?[a-z0-9-]+ Root CA (RSA2048|RSA4096|ECC384) G1")
CHECKED_ON = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _certificates() -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(DATABASE_CA_BUNDLE.read_bytes())


def test_the_first_part_is_the_published_rds_global_bundle_byte_for_byte() -> None:
    data = DATABASE_CA_BUNDLE.read_bytes()
    assert hashlib.sha256(data[:RDS_BUNDLE_BYTES]).hexdigest() == RDS_BUNDLE_SHA256


def test_every_rds_certificate_is_a_self_signed_amazon_rds_root_ca() -> None:
    rds = x509.load_pem_x509_certificates(DATABASE_CA_BUNDLE.read_bytes()[:RDS_BUNDLE_BYTES])
    assert len(rds) == 108
    for cert in rds:
        subject = cert.subject
        assert subject == cert.issuer
        assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Amazon Web Services, Inc."
        assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Amazon RDS"
        assert ROOT_CA_NAME.fullmatch(_cn(cert)), _cn(cert)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "Amazon RDS us-east-1 Root CA RSA2048 G1" in {_cn(cert) for cert in rds}


def test_the_rest_is_amazon_root_ca_1_to_4_as_certifi_ships_them() -> None:
    tail = DATABASE_CA_BUNDLE.read_bytes()[RDS_BUNDLE_BYTES:].decode()
    shipped = certifi.contents()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", tail, re.S)
    assert len(blocks) == 4
    assert all(block in shipped for block in blocks)
    assert [_cn(cert) for cert in _certificates()[108:]] == [f"Amazon Root CA {n}" for n in range(1, 5)]


def test_no_certificate_has_expired() -> None:
    now = dt.datetime.now(dt.UTC)
    certs = _certificates()
    assert len(certs) == 112
    for cert in certs:
        assert cert.not_valid_before_utc <= max(now, CHECKED_ON) <= cert.not_valid_after_utc, _cn(cert)


def test_the_bundle_ships_in_the_layer_package() -> None:
    import support

    assert DATABASE_CA_BUNDLE.parent.parent == __import__("pathlib").Path(support.__file__).resolve().parent
    assert DATABASE_CA_BUNDLE.is_file()


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
