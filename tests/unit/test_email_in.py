"""Inbound mail parsing (support.mail) over real clients' MIME (events/email/*.eml) and the edge cases around them:
the sender, threading ids, the text in every charset, the customer's new text, the files, automatic mail, the
reference in a subject, rejections, and SES's receipt event. No database, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from pydantic import ValidationError

from support.mail.inbound import (
    AutomaticReason,
    InboundEmail,
    Rejection,
    RejectionReason,
    automatic_reason,
    parse,
    reference_in_subject,
    strip_reply_prefixes,
)
from support.mail.ses import SesReceipt
from support.mail.text import decode_bytes, html_to_text, new_text, unflow

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "email"
EML_FILES = sorted(p.name for p in SAMPLES.glob("*.eml"))
MAX = 10 * 1024 * 1024


def sample(name: str) -> InboundEmail:
    parsed = parse((SAMPLES / name).read_bytes(), max_bytes=MAX)
    assert isinstance(parsed, InboundEmail), parsed
    return parsed


def message(headers: str, body: str = "Hello, my order has not arrived.\n", *, charset: str = "utf-8") -> bytes:
    """A small mail: the given header lines, then a text/plain body in `charset`."""
    head = headers.strip("\n") + "\n"
    if "content-type:" not in head.lower():
        head += f"MIME-Version: 1.0\nContent-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: 8bit\n"
    return head.encode("utf-8") + b"\n" + body.encode(charset)


BASE = "From: Jane Doe <jane@example.com>\nTo: support@shop.example\nSubject: Hello\nMessage-ID: <m1@example.com>"


def test_every_client_sample_is_here() -> None:
    assert EML_FILES == [
        "apple_mail_inline_image.eml",
        "auto_reply_vacation.eml",
        "bounce_mailer_daemon.eml",
        "gmail_reply.eml",
        "iso_8859_1_german.eml",
        "outlook_html_original_message.eml",
        "outlook_reply.eml",
        "pdf_attachment.eml",
        "plain_text_mutt.eml",
    ]


# --- The samples, client by client ------------------------------------------------------------------------------


def test_gmail_reply_threads_by_its_ids_and_keeps_only_the_new_text() -> None:
    mail = sample("gmail_reply.eml")

    assert mail.sender.email == "jane.doe@gmail.com" and mail.sender.name == "Jane Doe"
    assert [a.email for a in mail.to] == ["support@shop.example"]
    assert mail.delivered_to == ("support@shop.example",)
    assert mail.subject == "Re: [#10482] Your order KO-55821 has not arrived"
    assert reference_in_subject(mail.subject) == 10482
    assert mail.message_id == "CAKx7mQ9vN2w5s8Yt+3fJhQ0bZ=pLr4uE1cWq7dT6sHk-gA@mail.gmail.com"
    assert mail.in_reply_to == ("ticket-10482.m2.8a7b6c5d@support.shop.example",)
    assert mail.references == (
        "ticket-10482.m1.5c1d9f2e@support.shop.example",
        "ticket-10482.m2.8a7b6c5d@support.shop.example",
    )
    assert mail.thread_ids == mail.references[::-1]
    assert mail.date == datetime(2026, 12, 7, 10, 2, 41, tzinfo=timezone(timedelta(hours=1)))
    assert mail.content_type == "multipart/alternative" and mail.attachments == ()
    assert automatic_reason(mail) is None

    # the text/plain part is the text (the HTML alternative is kept, not repeated as an attachment)
    assert "“in transit” – it’s been\nstuck in Leipzig" in mail.text
    assert mail.html is not None and 'class="gmail_quote' in mail.html
    assert new_text(mail.text) == (
        "Hi Sam,\n\nThanks for checking. The tracking page still says “in transit” – it’s been\n"
        "stuck in Leipzig since Thursday. Could you send a replacement instead?\n\nJane"
    )
    # the full original stays: the quote is in the text, only new_text cuts it
    assert "> Thank you for your message." in mail.text

    # and the HTML alone gives the same new text (the attribution and the blockquote are history)
    from_html = new_text(html_to_text(mail.html))
    assert from_html.startswith("Hi Sam,\n\nThanks for checking.")
    assert from_html.endswith("Could you send a replacement instead?\n\nJane")


def test_outlook_reply_in_windows_1252_is_cut_at_its_from_sent_block() -> None:
    mail = sample("outlook_reply.eml")

    assert mail.sender.email == "t.berger@berger-bau.example"
    assert mail.to[0].name == "'Kestrel Outdoor Support'"  # as Outlook quotes it
    assert reference_in_subject(mail.subject) == 10477
    assert mail.message_id == "000001db4883$5b6c1a90$12444fb0$@berger-bau.example"
    expected = (
        "Hello,\n\nI’d like to return the jacket (order KO-55790) – it’s too small. The receipt says €189.00.\n"
        "Do I have to pay for the return label?\n\nBest regards\nThomas Berger\nBerger Bau GmbH | Einkauf\n"
        "Tel. +43 1 234 5678"
    )
    assert new_text(mail.text) == expected
    assert "Sent: Monday, December 7, 2026 9:30 AM" in mail.text
    # Word's HTML (styles, conditional comments, <o:p>&nbsp;</o:p> empty lines) renders to the same new text
    assert mail.html is not None
    assert new_text(html_to_text(mail.html)) == expected
    assert "font-family" not in html_to_text(mail.html)


def test_outlook_html_only_labelled_latin_1_is_read_as_windows_1252_and_cut_at_original_message() -> None:
    mail = sample("outlook_html_original_message.eml")

    assert mail.content_type == "text/html" and mail.html is not None
    assert mail.text == html_to_text(mail.html)  # no text/plain part: the HTML as text
    assert "–" in mail.text and "€20" in mail.text  # 0x96 and 0x80, not C1 control characters
    assert "\x80" not in mail.text and "\x96" not in mail.text
    assert new_text(mail.text) == (
        "Hi,\nthe replacement arrived today – thank you! One more question: can I still use the €20 voucher you "
        "sent with it?\n\nMaria"
    )
    assert "-----Original Message-----" in mail.text


def test_apple_mail_keeps_its_inline_image_with_its_content_id() -> None:
    mail = sample("apple_mail_inline_image.eml")

    (image,) = mail.attachments
    assert image.filename == "image0.jpeg"
    assert image.content_type == "image/jpeg"
    assert image.inline is True
    assert image.content_id == "8D1F2A3B-4C5D-4E6F-8A9B-0C1D2E3F4A5B"
    assert mail.html is not None and f"cid:{image.content_id}" in mail.html
    assert image.payload.startswith(b"\xff\xd8") and image.payload.endswith(b"\xff\xd9")
    assert image.size == len(image.payload) == 150
    # quoted-printable decoded; the image's placeholder, "Sent from my iPhone" and the quote are not new text
    assert new_text(mail.text) == "Hi, the stove’s burner looks like this after two uses. Is that normal?"


def test_plain_text_client_keeps_answers_written_between_the_quotes() -> None:
    mail = sample("plain_text_mutt.eml")

    assert new_text(mail.text) == (
        "Hi,\n\nIt is KS-2231-0097.\n\nNo, the first three trips were fine; it started last week."
    )
    assert mail.text.endswith("-- \nRavi Patel\nhttps://patel.example")
    assert mail.thread_ids == (
        "ticket-10466.m3.5e6f7a8b@support.shop.example",
        "A1B2C3D4-E5F6-4789-ABCD-EF0123456789@patel.example",
        "ticket-10466.m2.1a2b3c4d@support.shop.example",
    )


def test_a_bounce_is_automatic_and_keeps_its_report_and_the_returned_message() -> None:
    raw = (SAMPLES / "bounce_mailer_daemon.eml").read_bytes()
    mail = sample("bounce_mailer_daemon.eml")

    assert mail.sender.email == "mailer-daemon@mx1.berger-bau.example"
    assert mail.content_type == "multipart/report"
    assert automatic_reason(mail) == AutomaticReason.AUTO_SUBMITTED
    assert "Recipient address rejected" in mail.text
    # headers keep their order and repeats (the Received lines of each hop)
    received = mail.header_values("received")
    assert len(received) == 2 and received[0].startswith("from mx1.berger-bau.example")
    assert received[1].startswith("by mx1.berger-bau.example (Postfix)")
    status, returned = mail.attachments
    assert status.content_type == "message/delivery-status" and b"Status: 5.1.1" in status.payload
    assert returned.content_type == "message/rfc822"
    original = BytesParser(policy=policy.default).parsebytes(returned.payload)
    assert original["message-id"] == "<ticket-10477.m0.4d3c2b1a@support.shop.example>"

    # each sign alone is enough: the report type, the daemon sender, the empty Return-Path
    without_auto = raw.replace(b"Auto-Submitted: auto-replied\n", b"X-Removed: 1\n")
    assert automatic_reason(_parsed(without_auto)) == AutomaticReason.DELIVERY_REPORT


def test_a_vacation_reply_is_automatic() -> None:
    mail = sample("auto_reply_vacation.eml")

    assert mail.header("auto-submitted") == "auto-replied (vacation)"
    assert automatic_reason(mail) == AutomaticReason.AUTO_SUBMITTED
    assert reference_in_subject(mail.subject) == 10490  # it names the ticket, and still must not touch it
    assert "14 décembre" in mail.text


def test_iso_8859_1_german_mail_has_its_umlauts_and_flowed_lines_joined() -> None:
    mail = sample("iso_8859_1_german.eml")

    assert mail.sender.name == "Jürgen Müller"
    assert mail.subject == "Re: [#10471] Rücksendung der Größe L"
    assert reference_in_subject(mail.subject) == 10471
    assert new_text(mail.text) == (
        "Guten Tag,\n\ndie Rücksendung der Größe L habe ich heute bei der Post abgegeben. Bitte erstatten Sie den "
        "Betrag auf mein Konto zurück; die Zahlung für die Bestellung KO-55744 lief über PayPal.\n\n"
        "Mit freundlichen Grüßen\nJürgen Müller"
    )
    # the German attribution ("Am ... schrieb ...:") and the quote are in the text, not the new text
    assert "> bitte senden Sie die Jacke mit dem beiliegenden Etikett an unser Lager zurück." in mail.text


def test_pdf_attachment_keeps_its_bytes_and_its_rfc_2231_file_name() -> None:
    mail = sample("pdf_attachment.eml")

    (pdf,) = mail.attachments
    assert pdf.filename == "Rechnung KO-55902 Änderung.pdf"
    assert pdf.content_type == "application/pdf"
    assert pdf.inline is False and pdf.content_id is None
    assert pdf.payload.startswith(b"%PDF-1.4") and pdf.payload.endswith(b"%%EOF\n")
    assert pdf.size == len(pdf.payload) == 598
    assert "Attachment" not in repr(pdf.payload[:0]) and "payload" not in repr(pdf)  # bytes stay out of logs
    assert reference_in_subject(mail.subject) is None  # a new request
    assert mail.in_reply_to == () and mail.references == ()
    assert new_text(mail.text).startswith("Hello,\n\nplease find attached the invoice for order KO-55902. Our VAT")


@pytest.mark.parametrize("name", EML_FILES)
def test_every_sample_reads_the_same_with_crlf_line_ends(name: str) -> None:
    # SES stores the message as it came over SMTP, with CRLF; the samples are kept with LF for reading
    raw = (SAMPLES / name).read_bytes()
    lf, crlf = _parsed(raw), _parsed(raw.replace(b"\n", b"\r\n"))

    assert crlf.text == lf.text and crlf.html == lf.html
    assert (crlf.subject, crlf.sender, crlf.message_id, crlf.thread_ids) == (
        lf.subject,
        lf.sender,
        lf.message_id,
        lf.thread_ids,
    )
    assert [(a.filename, a.size) for a in crlf.attachments] == [(a.filename, a.size) for a in lf.attachments]
    assert new_text(crlf.text) == new_text(lf.text)


@pytest.mark.parametrize("name", EML_FILES)
def test_no_truncation_of_a_sample_makes_parse_raise(name: str) -> None:
    raw = (SAMPLES / name).read_bytes()
    for end in range(0, len(raw), 97):
        result = parse(raw[:end], max_bytes=MAX)  # a Rejection or a partial message, never an exception
        assert isinstance(result, InboundEmail | Rejection)
        if isinstance(result, InboundEmail):
            new_text(result.text)
            automatic_reason(result)


# --- SES's receipt event ----------------------------------------------------------------------------------------


def test_the_ses_receipt_event_names_the_stored_message_and_its_recipients() -> None:
    event = json.loads((SAMPLES / "ses_receipt.json").read_text())

    (receipt,) = SesReceipt.from_event(event)
    assert receipt.ses_message_id == "2k8v1q9m3c7n4h6t0s2d5f8g1j3l6p9r0b2e4u6o"
    assert receipt.recipients == ("kestrel-outdoor@inbound.desk.example",)
    assert receipt.source == "jane.doe@gmail.com"
    assert receipt.timestamp == datetime(2026, 12, 7, 9, 2, 43, 512000, tzinfo=UTC)
    assert (receipt.spam, receipt.virus, receipt.spf, receipt.dkim, receipt.dmarc) == ("PASS",) * 5
    assert receipt.refusal() is None
    # it describes the Gmail sample: the same Message-ID header, and SES's id in that sample's Received header
    common = event["Records"][0]["ses"]["mail"]["commonHeaders"]
    assert common["messageId"] == f"<{sample('gmail_reply.eml').message_id}>"
    assert receipt.ses_message_id.encode() in (SAMPLES / "gmail_reply.eml").read_bytes()


def test_ses_verdicts_refuse_a_virus_and_spam() -> None:
    event = json.loads((SAMPLES / "ses_receipt.json").read_text())
    receipt = event["Records"][0]["ses"]["receipt"]

    receipt["spamVerdict"]["status"] = "FAIL"
    assert SesReceipt.from_event(event)[0].refusal() == "spam"
    receipt["virusVerdict"] = {"status": "FAIL"}
    assert SesReceipt.from_event(event)[0].refusal() == "virus"
    receipt["spamVerdict"]["status"] = "GRAY"
    receipt["virusVerdict"] = {"status": "GRAY"}
    assert SesReceipt.from_event(event)[0].refusal() is None


def test_an_event_of_another_shape_is_refused() -> None:
    with pytest.raises(ValidationError):
        SesReceipt.from_event({"Records": [{"eventSource": "aws:s3", "s3": {}}]})


# --- Rejections -------------------------------------------------------------------------------------------------


def test_a_message_over_the_limit_is_rejected_with_what_its_headers_say() -> None:
    raw = message(BASE, "x" * 5000)

    result = parse(raw, max_bytes=4096)

    assert result == Rejection(
        reason=RejectionReason.TOO_LARGE,
        detail=f"{len(raw)} bytes, the limit is 4096",
        size=len(raw),
        message_id="m1@example.com",
        sender="jane@example.com",
    )
    assert isinstance(parse(raw, max_bytes=len(raw)), InboundEmail)  # the limit itself is allowed


@pytest.mark.parametrize(
    "raw",
    [b"", b"\r\n\r\n", b"just some words, no header at all", bytes(range(256)) * 4, b"\x00\x01\x02:\xff\xfe"],
    ids=["empty", "blank", "words", "binary", "control"],
)
def test_what_is_not_a_mail_is_rejected_as_unparseable(raw: bytes) -> None:
    result = parse(raw, max_bytes=MAX)
    assert isinstance(result, Rejection) and result.reason in (RejectionReason.UNPARSEABLE, RejectionReason.NO_SENDER)
    assert result.size == len(raw)


@pytest.mark.parametrize(
    "from_header", ["", "From: \n", "From: Jane Doe\n", "From: undisclosed-recipients:;\n", "From: jane@\n"]
)
def test_a_mail_without_a_sender_address_is_rejected(from_header: str) -> None:
    result = parse(message(f"{from_header}To: support@shop.example\nSubject: Hi\nMessage-ID: <x@y>"), max_bytes=MAX)
    assert isinstance(result, Rejection)
    assert result.reason == RejectionReason.NO_SENDER and result.message_id == "x@y"


def test_sender_falls_back_to_the_sender_header() -> None:
    mail = _parsed(message("Sender: Shop Bot <bot@shop.example>\nTo: support@shop.example\nSubject: Hi"))
    assert mail.sender.email == "bot@shop.example"


# --- Charsets and encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "body", "expected"),
    [
        ("utf-8", "Größe €".encode(), "Größe €"),
        ("iso-8859-1", "Größe".encode("latin-1"), "Größe"),
        ("windows-1252", "“Größe” – €".encode("cp1252"), "“Größe” – €"),
        ("iso-8859-1", "it’s €5".encode("cp1252"), "it’s €5"),  # Latin-1 label, 1252 bytes
        ("us-ascii", "Größe".encode(), "Größe"),  # ASCII label, UTF-8 bytes
        ("x-unknown-charset", "Größe".encode(), "Größe"),  # unknown: UTF-8 ...
        ("x-mac-roman", "Größe".encode("cp1252"), "Größe"),  # ... then windows-1252
        ("utf-8", b"Gr\xf6\xdfe", "Gr\ufffd\ufffde"),  # declared UTF-8 that is not: replaced, not raised
        (None, "Größe".encode(), "Größe"),
        (None, b"\x81\x8d\xe4", "\x81\x8dä"),  # bytes 1252 leaves unassigned: Latin-1 takes them
        ("koi8-r", "Привет".encode("koi8-r"), "Привет"),
        ("shift_jis", "こんにちは".encode("shift_jis"), "こんにちは"),
    ],
)
def test_decode_bytes_never_fails(charset: str | None, body: bytes, expected: str) -> None:
    assert decode_bytes(body, charset) == expected


def test_an_unknown_body_charset_falls_back_without_raising() -> None:
    raw = message(BASE, "Größe €", charset="utf-8").replace(b"charset=utf-8", b"charset=x-klingon")
    assert _parsed(raw).text == "Größe €"


def test_headers_are_decoded_in_every_charset_and_even_unencoded() -> None:
    raw = message(
        "From: =?iso-8859-1?Q?J=FCrgen_M=FCller?= <Juergen@Example.DE>\n"
        "To: support@shop.example\n"
        "Subject: =?x-unknown?Q?R=FCckfrage?= zu =?utf-8?B?R3LDtsOfZQ==?= und \xe4rger\n"
    )
    mail = _parsed(raw)
    assert mail.sender.email == "juergen@example.de"  # addresses in lower case
    assert mail.sender.name == "Jürgen Müller"
    assert mail.subject == "Rückfrage zu Größe und ärger"


def test_quoted_printable_and_base64_bodies_are_decoded() -> None:
    qp = message(BASE.replace("MIME", "X"), "").replace(b"8bit", b"quoted-printable") + b"Gr=C3=B6=C3=9Fe=\n soft\n"
    assert _parsed(qp).text == "Größe soft"
    b64 = message(BASE, "").replace(b"8bit", b"base64") + b"R3LDtsOfZQo=\n"
    assert _parsed(b64).text == "Größe"


def test_flowed_text_is_joined_as_it_was_typed() -> None:
    flowed = "A long line \nthat goes on \nand ends.\n> quoted and \n> continued\n-- \nsig"
    assert unflow(flowed, delsp=False) == "A long line that goes on and ends.\n> quoted and continued\n-- \nsig"
    assert unflow("Zusammen\u00adge \nschrieben", delsp=True) == "Zusammen\u00adgeschrieben"
    assert unflow(" From me, space-stuffed", delsp=False) == "From me, space-stuffed"


# --- Parts ------------------------------------------------------------------------------------------------------

MIXED = """From: Jane <jane@example.com>
To: support@shop.example
Subject: Files
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/html; charset=utf-8

<p>Before the file.</p>
--b1
Content-Type: application/octet-stream; name="=?UTF-8?Q?Bestellbest=C3=A4tigung=2Ezip?="
Content-Disposition: attachment; filename="=?UTF-8?Q?Bestellbest=C3=A4tigung=2Ezip?="
Content-Transfer-Encoding: base64

UEsDBA==
--b1
Content-Type: text/html; charset=utf-8

<p>After the file.</p>
--b1
Content-Type: text/plain; charset=utf-8
Content-Disposition: attachment; filename="../../etc/passwd"

root:x:0:0
--b1
Content-Type: message/rfc822

From: Old <old@example.com>
Subject: Forwarded as a file
Message-ID: <old@example.com>

Old text.
--b1
Content-Type: image/png
Content-ID: <logo@example>

PNGDATA
--b1--
"""


def test_a_body_split_around_files_is_joined_and_every_file_is_kept() -> None:
    mail = _parsed(MIXED.encode())

    assert mail.html == "<p>Before the file.</p>\n<p>After the file.</p>"
    assert mail.text == "Before the file.\nAfter the file."
    names = [(a.filename, a.content_type, a.inline, a.content_id) for a in mail.attachments]
    assert names == [
        ("Bestellbestätigung.zip", "application/octet-stream", False, None),  # RFC 2047 in a quoted parameter
        ("passwd", "text/plain", False, None),  # no directory part survives
        (None, "message/rfc822", False, None),
        (None, "image/png", True, "logo@example"),  # a Content-ID without a disposition is inline
    ]
    assert mail.attachments[0].payload == b"PK\x03\x04"
    forwarded = BytesParser(policy=policy.default).parsebytes(mail.attachments[2].payload)
    assert forwarded["subject"] == "Forwarded as a file"


def test_an_html_only_mail_becomes_text_without_scripts_or_styles() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<script>alert('x')</script><p>Hello &amp; welcome,</p><p>&nbsp;</p><div>line one<br>line two</div>"
        "<ul><li>first</li><li>second</li></ul><pre>  keep\n    spacing</pre>"
        "<blockquote><p>quoted</p><blockquote>deeper</blockquote></blockquote><p>after</p></body></html>"
    )
    assert html_to_text(html) == (
        "Hello & welcome,\n\nline one\nline two\n- first\n- second\n  keep\n    spacing\n> quoted\n> > deeper\nafter"
    )


@pytest.mark.parametrize("html", ["<p>unclosed <b>bold <div>and <i>more", "</p></div><<>>&bogus; text", "<![CDATA[x"])
def test_broken_html_still_gives_text(html: str) -> None:
    assert isinstance(html_to_text(html), str)
    assert "more" in html_to_text("<p>unclosed <b>bold <div>and <i>more")


def test_a_head_left_open_does_not_swallow_the_body() -> None:
    assert html_to_text("<html><head><title>Re: x</title><meta charset=utf-8><body><p>Hello</p></body>") == "Hello"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Date: Mon, 7 Dec 2026 10:02:41 +0100", datetime(2026, 12, 7, 9, 2, 41, tzinfo=UTC)),
        ("Date: Mon, 7 Dec 2026 10:02:41 -0000", datetime(2026, 12, 7, 10, 2, 41, tzinfo=UTC)),
        ("Date: yesterday, around noon", None),
        ("", None),
    ],
)
def test_dates_are_aware_or_none(headers: str, expected: datetime | None) -> None:
    assert _parsed(message(f"{BASE}\n{headers}")).date == expected


def test_message_ids_without_angle_brackets_and_bare_ones() -> None:
    mail = _parsed(message(f"{BASE}\nIn-Reply-To: a@b.example\nReferences: <r1@x> <r2@x>\n <r1@x>"))
    assert mail.message_id == "m1@example.com"
    assert mail.in_reply_to == ("a@b.example",)
    assert mail.references == ("r1@x", "r2@x")
    assert mail.thread_ids == ("a@b.example", "r2@x", "r1@x")
    assert _parsed(message("From: j@example.com")).message_id is None


# --- The customer's new text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes please.\n\nOn Mon, 7 Dec 2026 at 09:14, Support <s@shop.example> wrote:\n> Shall we?\n", "Yes please."),
        (
            "Yes please.\n\nOn Mon, Dec 7, 2026 at 9:14 AM Kestrel Outdoor Support <\ns@shop.example> wrote:\n\n> Q\n",
            "Yes please.",
        ),
        ("Ja.\n\nAm 04.12.2026 um 15:02 schrieb Support:\n> Frage\n", "Ja."),
        ("Oui.\n\nLe lun. 7 déc. 2026 à 09:14, Support <s@shop.example> a écrit :\n> Question\n", "Oui."),
        ("Yes.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\nOld text", "Yes."),
        ("Ja.\n\n-----Ursprüngliche Nachricht-----\nVon: Support\nGesendet: Montag\n\nAlt", "Ja."),
        ("Yes.\n\nFrom: Support <s@shop.example>\nSent: Monday, December 7, 2026 9:30 AM\nTo: me\n\nOld", "Yes."),
        ("Ja.\n\nVon: Support <s@shop.example>\nGesendet: Montag, 7. Dezember 2026 09:30\nAn: mich\n\nAlt", "Ja."),
        ("Yes.\n________________________________\nFrom: Support\nSent: Monday\nTo: me\n\nOld", "Yes."),
        ("Yes.\n> old\n> older\n", "Yes."),
        ("Yes.\n-- \nJane Doe\nACME", "Yes."),
        ("Yes.\n\nSent from my iPhone", "Yes."),
        ("Yes.\n\nSent from my Galaxy", "Yes."),
        ("Yes.\n\nGet Outlook for iOS", "Yes."),
        ("Ja.\n\nVon meinem iPhone gesendet", "Ja."),
        ("Yes.\r\n\r\nOn Mon, Support wrote:\r\n> old\r\n", "Yes."),
    ],
    ids=[
        "on-wrote",
        "on-wrote-two-lines",
        "am-schrieb",
        "le-a-ecrit",
        "original-message",
        "urspruengliche-nachricht",
        "outlook-from-sent",
        "outlook-von-gesendet",
        "outlook-rule",
        "quoted-block",
        "signature",
        "sent-from-iphone",
        "sent-from-galaxy",
        "get-outlook",
        "von-meinem-iphone",
        "crlf",
    ],
)
def test_new_text_cuts_at_the_usual_markers(text: str, expected: str) -> None:
    assert new_text(text) == expected


def test_new_text_keeps_what_only_looks_like_a_marker() -> None:
    # "From:" without "Sent:" or "Date:" in the three lines below is not a header block; "--" inside a line is not
    # the signature delimiter; "On ..." without "wrote:" is a sentence; a quote sign inside a line is not a quote
    text = (
        "From: my experience the zip sticks.\nDate of purchase was in May.\nOn the second trip it broke.\n"
        "-- not a signature, a dash pair in a sentence\nI measured 3 > 2 cm.\nThanks"
    )
    assert new_text(text) == text


def test_an_attribution_over_unquoted_history_cuts_everything_below() -> None:
    # an HTML reply rendered to text has no ">" before the old message: all of it below the attribution is history
    assert new_text("Fine.\n\nOn Mon, 7 Dec 2026, Support wrote:\nHello Jane,\nyour order ...") == "Fine."


def test_a_mail_that_is_all_quote_keeps_its_whole_text() -> None:
    text = "> Only the quote\n> and nothing else"
    assert new_text(text) == text
    assert new_text("") == ""


def test_a_forwarded_message_keeps_what_was_forwarded() -> None:
    text = (
        "Please look at this one.\n\n---------- Forwarded message ---------\nFrom: Customer <c@example.com>\n"
        "Date: Mon, 7 Dec 2026\nSubject: Broken\n\nThe lid is broken."
    )
    assert new_text(text) == text


# --- Automatic mail ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("", None),
        ("Auto-Submitted: no", None),
        ("Auto-Submitted: auto-replied", AutomaticReason.AUTO_SUBMITTED),
        ("Auto-Submitted: Auto-Generated; owner-email=x@y", AutomaticReason.AUTO_SUBMITTED),
        ("Auto-Submitted: auto-notified", AutomaticReason.AUTO_SUBMITTED),
        ("Precedence: bulk", AutomaticReason.PRECEDENCE),
        ("Precedence: List", AutomaticReason.PRECEDENCE),
        ("Precedence: junk", AutomaticReason.PRECEDENCE),
        ("Precedence: first-class", None),
        ("X-Autoreply: yes", AutomaticReason.AUTOREPLY),
        ("X-Autorespond: Out of office", AutomaticReason.AUTOREPLY),
        ("X-Autogenerated: Reply", AutomaticReason.AUTOREPLY),
        ("List-Id: Hikers <hikers.lists.example>", AutomaticReason.MAILING_LIST),
        ("List-Unsubscribe: <https://news.example/u/1>", AutomaticReason.MAILING_LIST),
        ("Return-Path: <>", AutomaticReason.NULL_SENDER),
        ("Return-Path: <jane@example.com>", None),
    ],
)
def test_automatic_mail_is_recognised_by_its_headers(headers: str, reason: AutomaticReason | None) -> None:
    assert automatic_reason(_parsed(message(f"{BASE}\n{headers}"))) == reason


@pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example", "postmaster@mx.example", "Mailer_Daemon@mx.example"])
def test_mail_from_a_mailer_daemon_or_postmaster_is_automatic(sender: str) -> None:
    raw = message(BASE.replace("Jane Doe <jane@example.com>", sender))
    assert automatic_reason(_parsed(raw)) == AutomaticReason.MAILER_DAEMON


def test_a_read_receipt_report_is_automatic() -> None:
    raw = (
        b"From: Jane <jane@example.com>\nTo: support@shop.example\nSubject: Read: Hello\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\n\n'
        b"--r\nContent-Type: text/plain\n\nYour message was read.\n--r\n"
        b"Content-Type: message/disposition-notification\n\nDisposition: manual-action/MDN-sent-manually; displayed\n"
        b"--r--\n"
    )
    mail = _parsed(raw)
    assert automatic_reason(mail) == AutomaticReason.DELIVERY_REPORT
    assert mail.text == "Your message was read."


# --- The reference in a subject ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("[#10482] Your order has not arrived", 10482),
        ("Re: [#10482] Your order has not arrived", 10482),
        ("AW: WG: RE: [#10482] Ihre Bestellung", 10482),
        ("Your order has not arrived [#10482]", 10482),
        ("Re: #10482 Your order", 10482),
        ("AW: #77", 77),
        ("Re[2]: #44 still broken", 44),
        ("Fwd: Re: Ticket [#5] and order #9", 5),
        ("Order #12345 has not arrived", None),  # the shop's order number, not a ticket
        ("Re: Order #12345 has not arrived", None),
        ("#abc", None),
        ("[#] nothing", None),
        ("", None),
    ],
)
def test_reference_in_subject(subject: str, reference: int | None) -> None:
    assert reference_in_subject(subject) == reference


@pytest.mark.parametrize(
    ("subject", "stripped"),
    [
        ("Re: AW: Fwd: Where is my order", "Where is my order"),
        ("RE:[#1] x", "[#1] x"),
        ("Regarding my order", "Regarding my order"),
        ("WG: Sv: Antw: hello", "hello"),
    ],
)
def test_strip_reply_prefixes(subject: str, stripped: str) -> None:
    assert strip_reply_prefixes(subject) == stripped


def _parsed(raw: bytes) -> InboundEmail:
    parsed = parse(raw, max_bytes=MAX)
    assert isinstance(parsed, InboundEmail), parsed
    return parsed
