"""What SES's receipt rule tells the email function: which stored message (the S3 action before the Lambda action
stored it under SES's message id), for which receiving addresses, and SES's own verdicts. The body is not in the
event; `support.mail.inbound.parse` reads it from S3."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictStatus = Literal["PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"]


class _Verdict(BaseModel):
    status: VerdictStatus


class SesReceipt(BaseModel):
    """One record of the receipt event, flattened to what the desk uses."""

    model_config = ConfigDict(frozen=True)

    ses_message_id: str  # the S3 object's name under the rule's prefix; not the Message-ID header
    timestamp: datetime
    source: str  # the envelope sender (MAIL FROM); empty for a bounce
    recipients: tuple[str, ...]  # the envelope recipients this rule matched, lower case
    spam: VerdictStatus
    virus: VerdictStatus
    spf: VerdictStatus
    dkim: VerdictStatus
    dmarc: VerdictStatus
    headers_truncated: bool = False

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> list[SesReceipt]:
        """Every record of an SES receipt event (SES sends one per message; the list keeps the shape honest).
        Raises pydantic's ValidationError for an event of another shape."""
        return [cls.from_record(_Record.model_validate(record)) for record in event.get("Records", [])]

    @classmethod
    def from_record(cls, record: _Record) -> SesReceipt:
        mail, receipt = record.ses.mail, record.ses.receipt
        return cls(
            ses_message_id=mail.message_id,
            timestamp=receipt.timestamp,
            source=mail.source,
            recipients=tuple(address.lower() for address in receipt.recipients),
            spam=receipt.spam_verdict.status,
            virus=receipt.virus_verdict.status,
            spf=receipt.spf_verdict.status,
            dkim=receipt.dkim_verdict.status,
            dmarc=receipt.dmarc_verdict.status,
            headers_truncated=mail.headers_truncated,
        )

    def refusal(self) -> str | None:
        """`virus` or `spam` when SES's scan found one: such a message is kept but opens no ticket and gets no
        answer. SPF, DKIM and DMARC are the caller's to weigh (a forwarded message often fails SPF)."""
        if self.virus == "FAIL":
            return "virus"
        if self.spam == "FAIL":
            return "spam"
        return None


class _Mail(BaseModel):
    message_id: str = Field(alias="messageId", min_length=1)
    source: str
    headers_truncated: bool = Field(default=False, alias="headersTruncated")


class _Receipt(BaseModel):
    timestamp: datetime
    recipients: list[str] = Field(min_length=1)
    spam_verdict: _Verdict = Field(alias="spamVerdict")
    virus_verdict: _Verdict = Field(alias="virusVerdict")
    spf_verdict: _Verdict = Field(alias="spfVerdict")
    dkim_verdict: _Verdict = Field(alias="dkimVerdict")
    dmarc_verdict: _Verdict = Field(alias="dmarcVerdict")


class _Ses(BaseModel):
    mail: _Mail
    receipt: _Receipt


class _Record(BaseModel):
    event_source: Literal["aws:ses"] = Field(alias="eventSource")
    ses: _Ses
