"""The text of a mail: bytes to str in whatever charset it claims, HTML to plain text, and the customer's new text
cut from the quoted history and signature below it.

Everything here is total: a wrong or unknown charset, broken HTML or a message that is all quote gives a best
effort, never an exception (an inbound mail is kept, not lost over a detail of its encoding).
"""

from __future__ import annotations

import codecs
import re
from html.parser import HTMLParser

# Labels that mean windows-1252 in practice: Outlook and many web forms declare ISO-8859-1 or ASCII and send
# 1252's curly quotes, dashes and euro sign (0x80-0x9F), which are invisible control characters in real Latin-1.
# Browsers decode these labels as windows-1252 for the same reason (the WHATWG Encoding Standard).
_WINDOWS_1252_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "cp819"})


def decode_bytes(payload: bytes, charset: str | None) -> str:
    """The text of a body part: its declared charset when Python knows it, else UTF-8, else windows-1252, else
    Latin-1 (which decodes any byte). Bytes that do not fit the declared charset become U+FFFD."""
    label = (charset or "").strip().strip('"').lower()
    if label in _WINDOWS_1252_LABELS:
        if payload.isascii():
            return payload.decode("ascii")
        try:
            return payload.decode("utf-8")  # mislabelled UTF-8 (an "ascii" part with 8-bit text)
        except UnicodeDecodeError:
            return _windows_1252(payload)
    if label:
        try:
            codec = codecs.lookup(label)
        except LookupError:
            codec = None
        if codec is not None:
            return payload.decode(codec.name, errors="replace")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return _windows_1252(payload)


def _windows_1252(payload: bytes) -> str:
    try:
        return payload.decode("cp1252")
    except UnicodeDecodeError:  # five bytes are unassigned in 1252; Latin-1 takes every byte
        return payload.decode("latin-1")


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def unflow(text: str, *, delsp: bool) -> str:
    """A `format=flowed` body (RFC 3676: Thunderbird, Apple Mail) as its writer typed it: a line ending in a space
    continues on the next line of the same quote depth; a leading space was added for transport."""
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if pending is not None and depth == pending_depth:
            pending += content
        else:
            if pending is not None:
                out.append(_quoted(pending, pending_depth))
            pending, pending_depth = content, depth
        if not flowed:
            out.append(_quoted(pending, pending_depth))
            pending = None
    if pending is not None:
        out.append(_quoted(pending, pending_depth))
    return "\n".join(out)


def _quoted(content: str, depth: int) -> str:
    return "> " * depth + content if depth else content


# --- HTML to text -----------------------------------------------------------------------------------------------

_SKIPPED = frozenset({"script", "style", "head", "title", "template", "svg", "object", "iframe"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "caption", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
        "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"})
_SPACES = re.compile(r"[ \t\n\r\f]+")


class _TextRenderer(HTMLParser):
    """What a mail reader shows, as lines: blocks on lines of their own, `<br>` a line break, quoted blocks
    (`<blockquote>`) prefixed with `> ` per level as a plain-text client quotes, list items with `- `; scripts,
    styles and the head dropped. `&nbsp;` alone in a paragraph (Outlook's empty line) is an empty line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._current: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip = 0  # a head (or a style) left open ends where the body begins
            return
        if tag in _SKIPPED:
            if tag not in _VOID:
                self._skip += 1
            return
        if self._skip:
            return
        if tag == "br":
            self._flush(force=True)
        elif tag == "blockquote":
            self._flush()
            self._quote += 1
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BLOCKS:
            self._flush()
            if tag == "li":
                self._current.append("- ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self._current.append(f"[{alt.strip()}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and tag in _SKIPPED:
            self._skip -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag not in _VOID:
                self._skip = max(0, self._skip - 1)
            return
        if self._skip:
            return
        if tag == "blockquote":
            self._flush()
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            lines = data.split("\n")
            for line in lines[:-1]:
                self._current.append(line)
                self._flush(force=True)
            self._current.append(lines[-1])
        else:
            self._current.append(_SPACES.sub(" ", data))

    def _flush(self, *, force: bool = False) -> None:
        line = "".join(self._current)
        line = line.rstrip() if self._pre else line.strip(" ")
        self._current = []
        if line or force:
            text = line.replace("\xa0", " ").rstrip()
            self.lines.append(("> " * self._quote + text).rstrip() if self._quote else text)

    def text(self) -> str:
        self._flush()
        return _tidy("\n".join(self.lines))


def html_to_text(html: str) -> str:
    """Plain text from an HTML body with the standard library's parser (which accepts any tag soup)."""
    renderer = _TextRenderer()
    try:
        renderer.feed(html)
        renderer.close()
    except Exception:  # html.parser is lenient, but an inbound mail must never fail on its HTML
        return _tidy(_SPACES.sub(" ", re.sub(r"<[^>]*>", " ", html)))
    return renderer.text()


def _tidy(text: str) -> str:
    """No trailing spaces, at most one empty line in a row, none at either end."""
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


# --- The customer's new text ------------------------------------------------------------------------------------

# "On Mon, 7 Dec 2026 at 09:14, Support <support@shop.example> wrote:" and its translations (the attribution line
# that Gmail, Apple Mail, Thunderbird and most clients put above the quote). A long one wraps over two lines.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{4,300}\bwrote\s*:"
    r"|Am\b.{4,300}\bschrieb\b.{0,300}:"
    r"|Le\b.{4,300}\ba\s+écrit\s*:"
    r"|El\b.{4,300}\bescribió\s*:"
    r"|Op\b.{4,300}\bschreef\b.{0,300}:"
    r"|Il\b.{4,300}\bha\s+scritto\s*:"
    r"|Em\b.{4,300}\bescreveu\s*:"
    r")\s*$",
    re.IGNORECASE,
)
# Outlook's and others' separators: everything below is the previous message, unquoted.
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Alkuperäinen viesti)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*_{10,}\s*$")  # Outlook's line above its header block in a plain-text reply
# The header block Outlook writes above the quoted message (From, Sent, To, Subject), in a few languages.
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|Von|De|Da|Van|Från|Fra)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|Verzonden|Skickat|Sendt)\s*:\*?\s+\S", re.IGNORECASE
)
_SENT_FROM_DEVICE = re.compile(
    r"^\s*(?:Sent from my \w[\w ]{0,40}|Sent from (?:Mail|Outlook|Yahoo Mail)\b.{0,60}|Get Outlook for \w.{0,40}"
    r"|Von meinem \w[\w ]{0,40} gesendet|Envoyé de mon \w[\w ]{0,40}|Enviado desde mi \w[\w ]{0,40})\s*$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER = "-- "
# A message forwarded by hand (to the desk, by a colleague): what was forwarded is the substance, kept whole.
_FORWARDED = re.compile(
    r"^\s*(?:-{2,}\s*Forwarded message\s*-{2,}|Begin forwarded message:|-{2,}\s*Weitergeleitete Nachricht\s*-{2,})\s*$",
    re.IGNORECASE,
)


def new_text(text: str) -> str:
    """What the customer wrote this time: the text above the quoted history (an attribution line followed by the
    old message, `-----Original Message-----`, Outlook's From/Sent header block), without quoted (`>`) lines,
    and above the signature (`-- `) or a "Sent from my iPhone" line. A reply written below or between the quoted
    lines keeps its own lines; a message forwarded by hand keeps what was forwarded. If nothing is left (all of it
    quoted), the whole text is the new text: the desk stores too much rather than nothing. The caller keeps the
    full text beside it."""
    lines = normalize_newlines(text).replace("\ufffc", "").split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if _FORWARDED.match(line):
            kept.extend(lines[index:])
            break
        if line in (_SIGNATURE_DELIMITER, "--") or _SENT_FROM_DEVICE.match(line):
            break
        if _ORIGINAL_MESSAGE.match(line) or _outlook_header_block(lines, index):
            break
        if _RULE.match(line) and _outlook_header_block(lines, _next_filled(lines, index + 1)):
            break
        attribution = _attribution_at(lines, index)
        if attribution:
            after = _next_filled(lines, index + attribution)
            if after < len(lines) and lines[after].lstrip().startswith(">"):
                index += attribution  # the quote below is dropped line by line; a reply after it stays
                continue
            break  # the old message follows unquoted (an HTML reply rendered as text): all of it is history
        if stripped.startswith(">"):
            index += 1
            continue
        kept.append(line)
        index += 1
    result = _tidy("\n".join(kept))
    return result if result.strip() else _tidy(normalize_newlines(text)).strip()


def _attribution_at(lines: list[str], index: int) -> int:
    """How many lines (1 or 2) an attribution starting at `index` takes, or 0."""
    if _ATTRIBUTION.match(lines[index]):
        return 1
    if index + 1 < len(lines) and lines[index].strip() and _ATTRIBUTION.match(f"{lines[index]} {lines[index + 1]}"):
        return 2
    return 0


def _outlook_header_block(lines: list[str], index: int) -> bool:
    """A `From:` line followed within three lines by `Sent:` (or `Date:`): the header of a quoted message."""
    if index >= len(lines) or not _HEADER_FROM.match(lines[index]):
        return False
    return any(_HEADER_SENT.match(line) for line in lines[index + 1 : index + 4])


def _next_filled(lines: list[str], index: int) -> int:
    while index < len(lines) and not lines[index].strip():
        index += 1
    return index
