"""Read one large JSON document a piece at a time: its top-level members, and the elements of one array member
(a Bundle's `entry`) one by one, each as its JSON text, with where it starts in the file.

msgspec finds where each piece ends (decoding it as `msgspec.Raw` checks its syntax, the strings skipped
whole, and says at which byte the text after it begins), so a string holding brackets, quotes or escapes
never cuts a piece. Memory is a read buffer of `CHUNK` bytes (more only while one piece is larger) and the
piece at hand; what is not JSON stops the reading with `Malformed`, which says where.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import msgspec
import orjson

CHUNK = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"
_BUNDLE_START = re.compile(rb'\A(?:\xef\xbb\xbf)?[ \t\r\n]*\{[ \t\r\n]*"resourceType"[ \t\r\n]*:[ \t\r\n]*"Bundle"')
_SPACE = re.compile(rb"[ \t\r\n]*")
_AT_BYTE = re.compile(r"^JSON is malformed: (.*) \(byte (\d+)\)$")
_CONTINUATION = bytes(range(0x80, 0xC0))
_NEAR = 16  # an error this close to the end of the buffer may come from the cut, not the text
_MAX_NESTING = 1000  # msgspec's limit
_raw = msgspec.json.Decoder(msgspec.Raw).decode


def starts_as_bundle(head: bytes) -> bool:
    """Whether a JSON text begins as a Bundle (`{"resourceType": "Bundle"`, the way Bundles are written)."""
    return _BUNDLE_START.match(head) is not None


@dataclass(frozen=True, slots=True)
class Member:
    """A top-level member other than the streamed array: its key's JSON text, the key and the value's JSON text."""

    key_text: bytes
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the streamed array: its index, its JSON text and the byte of the file it starts at."""

    index: int
    text: bytes
    offset: int


class Malformed(Exception):
    """The text stops being JSON at byte `offset` of the file (line and column counted as JSON readers do)."""

    def __init__(self, offset: int, line: int, column: int, reason: str, element: int | None) -> None:
        super().__init__(reason)
        self.offset = offset
        self.line = line
        self.column = column
        self.reason = reason
        self.element = element  # the index of the array element it is in, if any


class _Buffer:
    """The part of the file being read, with the line and column (in characters) where it starts."""

    def __init__(self, fh: BinaryIO, chunk: int) -> None:
        self.fh = fh
        self.chunk = chunk
        self.data = b""
        self.pos = 0  # in `data`
        self.start = 0  # the file offset of data[0]
        self.line = 1  # of data[0]
        self.column = 1  # of data[0], in characters
        self.eof = False

    def more(self, at_least: int = 0) -> bool:
        """Read more (at least as much again as is buffered from `pos`, when a piece is larger); False at the end."""
        if self.eof:
            return False
        self._drop()
        got = self.fh.read(max(self.chunk, at_least))
        if not got:
            self.eof = True
            return False
        self.data += got
        return True

    def _drop(self) -> None:
        done = self.data[: self.pos]
        newline = done.rfind(b"\n")
        if newline >= 0:
            self.line += done.count(b"\n")
            self.column = 1 + _characters(done[newline + 1 :])
        else:
            self.column += _characters(done)
        self.start += self.pos
        self.data = self.data[self.pos :]
        self.pos = 0

    def space(self) -> bytes:
        """Skip white space; the next byte (b"" at the end of the file)."""
        while True:
            self.pos = _SPACE.match(self.data, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.data):
                return self.data[self.pos : self.pos + 1]
            if not self.more():
                return b""

    def expect(self, allowed: bytes, element: int | None = None) -> bytes:
        """The next byte after white space, which must be one of `allowed`; consumed."""
        found = self.space()
        if not found or found not in allowed:
            what = "end of data" if not found else f"character {found.decode('latin-1')!r}"
            wanted = " or ".join(repr(chr(c)) for c in allowed)
            raise self.malformed(self.pos, f"unexpected {what}, expected {wanted}", element)
        self.pos += 1
        return found

    def value(self, element: int | None = None) -> tuple[bytes, int]:
        """The next JSON value's text and the file offset it starts at."""
        self.space()
        while True:
            view = memoryview(self.data)[self.pos :]
            try:
                _raw(view)
            except msgspec.DecodeError as exc:
                message = str(exc)
                found = _AT_BYTE.match(message)
                at = int(found.group(2)) if found else len(view)
                trailing = found is not None and found.group(1) == "trailing characters"
                if (message == "Input data was truncated" or (at >= len(view) - _NEAR and not trailing)) and self.more(
                    len(view)
                ):
                    continue  # perhaps only cut short by the end of the buffer (`1.` of `1.5`): read on
                if trailing:
                    end = self.pos + at - 1  # msgspec counts the trailing byte itself
                    text = self.data[self.pos : end].rstrip(b" \t\r\n")
                    offset, self.pos = self.start + self.pos, end
                    return text, offset
                raise self._diagnose(view, found, element) from None
            except RecursionError:
                raise self.malformed(
                    self.pos, f"nesting too deep to read ({_MAX_NESTING} levels or more)", element
                ) from None
            finally:
                view.release()
            if not self.more(len(self.data) - self.pos):  # a whole value up to the end: complete only at the end
                text = self.data[self.pos :].rstrip(b" \t\r\n")
                offset, self.pos = self.start + self.pos, len(self.data)
                return text, offset

    def _diagnose(self, view: memoryview, found: re.Match[str] | None, element: int | None) -> Malformed:
        """Where and why a value is not JSON, said as orjson (what the rest of fhir-ns reads with) says it."""
        at = int(found.group(2)) if found else len(view)
        piece = bytes(view[: at + 1])
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self.malformed(self.pos + exc.start, f"not UTF-8: byte 0x{piece[exc.start]:02x}", element)
        if bytes(view[at : at + 9]).startswith((b"NaN", b"Infinity", b"-Infinity")):
            return self.malformed(self.pos + at, "NaN and Infinity are not JSON numbers", element)
        try:
            orjson.loads(piece)
        except orjson.JSONDecodeError as exc:
            reason = exc.msg
            if found and "end of data" not in reason:  # where orjson stops, as reading whole says (a trailing comma)
                at = len(piece.decode()[: exc.pos].encode())
        else:
            reason = found.group(1) if found else "unexpected end of data"
        if not found:
            reason = "unexpected end of data"
        return self.malformed(self.pos + at, reason, element)

    def malformed(self, at: int, reason: str, element: int | None) -> Malformed:
        """`Malformed` at `data[at]`, with its line and column in the file."""
        before = self.data[:at]
        newline = before.rfind(b"\n")
        line = self.line + before.count(b"\n")
        column = 1 + _characters(before[newline + 1 :]) if newline >= 0 else self.column + _characters(before)
        return Malformed(self.start + at, line, column, reason, element)


def _characters(text: bytes) -> int:
    """How many characters a piece of UTF-8 holds (its bytes that do not continue a character)."""
    return len(text.translate(None, _CONTINUATION))


def members(fh: BinaryIO, streamed: str = "entry", chunk: int = CHUNK) -> Iterator[Member | Element]:
    """The members of the JSON object in `fh`, in their order; the first member named `streamed` whose value
    is an array with something in it comes as its Elements, one at a time, instead. A leading UTF-8 byte order
    mark is skipped (the caller says so). Raises Malformed where the text stops being one JSON object."""
    buf = _Buffer(fh, chunk)
    buf.more()
    if buf.data.startswith(UTF8_BOM):
        buf.pos = len(UTF8_BOM)
    buf.expect(b"{")
    if buf.space() == b"}":
        buf.pos += 1
    else:
        done = False
        while True:
            key_text, _ = buf.value()
            try:
                key = orjson.loads(key_text)
            except orjson.JSONDecodeError:
                key = None
            if not isinstance(key, str):
                raise buf.malformed(buf.pos - len(key_text), "key must be a string", None)
            buf.expect(b":")
            if key == streamed and not done and buf.space() == b"[":
                done = True
                start = buf.pos
                buf.pos += 1
                if buf.space() == b"]":
                    buf.pos += 1
                    yield Member(key_text, key, buf.data[start : buf.pos])
                else:
                    yield from _elements(buf)
            else:
                yield Member(key_text, key, buf.value()[0])
            if buf.expect(b",}") == b"}":
                break
    if buf.space():
        raise buf.malformed(buf.pos, "unexpected content after document", None)


def _elements(buf: _Buffer) -> Iterator[Element]:
    index = 0
    while True:
        text, offset = buf.value(index)
        yield Element(index, text, offset)
        if buf.expect(b",]", index) == b"]":
            return
        index += 1
