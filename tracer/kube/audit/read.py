"""Reading one audit log: bytes in, audit Events out, in flat memory.

A log is JSON lines (kube-apiserver's log backend), plain or gzip (recognised by its magic
bytes, of one or more members), or one JSON document: an `EventList` or a single Event,
pretty-printed or not.

Bounds. The file is read in blocks of at most 1 MiB (decompressed), split into lines, and
every line is dropped once looked at, so memory does not grow with the log. Past a limit
(`Limits`: 64 MiB for one line, 64 MiB for a whole document, 64 GiB decompressed for one
log) reading stops with an InputError that names the limit; a gzip bomb stops there too.

Is it an audit log? Until an audit.k8s.io Event (or EventList) has been seen, every line is
parsed and checked in full. A NUL byte (binary data), an unreadable gzip stream, or no
Event among the first 100 non-empty lines (or 64 MiB) makes the file an input error, and
so does an empty file: such files used to read as "0 events".

Which lines are parsed. Once the file is known to be an audit log:
  * a line that contains `pod-security` or `PodSecurity` is parsed and every field the
    analysis reads is type-checked (`shape.event_problem`): only such a line can hold a
    Pod Security outcome (the annotation keys start with "pod-security", denials say
    `violates PodSecurity`; the apiserver's JSON encoder never escapes those letters);
  * a line in the apiserver's own form, `{"kind":"Event","apiVersion":"audit.k8s.io/...`
    up to a closing `}`, without those words, is counted as an event without being
    parsed: it cannot hold a finding, and parsing it would cost as much as the whole
    analysis. A line of that form that is nonetheless broken inside (bad JSON, a wrongly
    typed field) is therefore not reported as malformed;
  * any other non-empty line (another key order, a cut line, a klog line, an EventList on
    one line) is parsed and checked in full, as above.
The rules are applied per run of lines (a block): when every line of a run is in the
apiserver's form, which three scans in C tell, the words are searched for across the run
and no other line is touched at all; otherwise the run is taken line by line.
Malformed lines are reported as FILE:LINE: problem; the first 1,000 of a file are listed,
the rest counted in one closing entry.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import orjson

from tracer.errors import InputError
from tracer.kube.audit.shape import event_problem, is_audit_event_list, not_an_event

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
BLOCK = 1 * MiB  # the most decompressed bytes held from the file at once, besides one line
GZIP_INPUT_READ = 256 * KiB
GZIP_MAGIC = b"\x1f\x8b"
GZIP_WBITS = 16 + zlib.MAX_WBITS

CANDIDATE_WORDS = (b"pod-security", b"PodSecurity")
APISERVER_EVENT_START = b'{"kind":"Event","apiVersion":"audit.k8s.io/'


@dataclass(frozen=True)
class Limits:
    line: int = 64 * MiB  # one line, i.e. one Event
    document: int = 64 * MiB  # a file read whole as one JSON document
    total: int = 64 * GiB  # decompressed bytes of one log
    sniff_lines: int = 100  # non-empty lines that must hold an audit Event
    sniff_bytes: int = 64 * MiB  # ... within this many bytes
    listed_malformed: int = 1000  # malformed lines listed per file; the rest are counted


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Malformed:
    file: str
    line: int
    problem: str


class _CorruptGzip(Exception):
    pass


class _LineTooLong(Exception):
    pass


class AuditLog:
    """One log file being read: `events()` yields its Events, the counts are kept here."""

    def __init__(self, path: str | Path, limits: Limits, malformed: list[Malformed]):
        self.path, self.source, self.limits = Path(path), str(path), limits
        self.malformed = malformed
        self.events_read = 0
        self.malformed_lines = 0
        self.lines_read = 0
        self.confirmed = False  # an audit Event or EventList has been seen
        self._non_empty_lines = 0
        self._bytes_read = 0
        self._first_problem = ""
        self._document_too_large = False

    # --- the events ---------------------------------------------------------------------

    def events(self) -> Iterator[dict]:
        """Every Event that was parsed and checked; see the module docstring for which."""
        require_readable_file(self.path)
        try:
            for data, start, end in _runs_of_lines(self._blocks(), self.limits.line):
                if self.confirmed:
                    yield from self._skim(data, start, end)
                elif (yield from self._sniff(data[start:end].split(b"\n")[:-1])):
                    return  # the file was one JSON document
        except _LineTooLong:
            problem = (
                f"line {self.lines_read + 1} is longer than {_size(self.limits.line)}, the limit for one audit Event"
            )
            raise (InputError(self.source, problem) if self.confirmed else self._not_an_audit_log(problem)) from None
        except _CorruptGzip as err:
            if not self.confirmed:
                raise self._not_an_audit_log(f"corrupt gzip stream: {err}") from None
            self._report(self.lines_read + 1, f"truncated or corrupt gzip stream: {err}")
        self._close()

    def _sniff(self, lines: list[bytes]):
        """Parse every line until an audit Event shows that this is an audit log; returns
        True when the file was read as one whole JSON document instead."""
        for index, line in enumerate(lines):
            if self.confirmed:
                yield from self._line_by_line(lines[index:])
                return False
            self.lines_read += 1
            if not line.strip():
                continue
            self._non_empty_lines += 1
            if b"\0" in line:
                raise self._not_an_audit_log("binary data")
            value = _json_or_none(line)
            if value is None and self._non_empty_lines == 1 and line.lstrip().startswith(b"{"):
                # not JSON on its own: may open a pretty-printed EventList or Event
                if isinstance(document := self._whole_document(), dict):
                    yield from self._checked(document, line, self.lines_read)
                    self._close()
                    return True
            yield from self._checked(value, line, self.lines_read)
            if not self.confirmed and self._non_empty_lines >= self.limits.sniff_lines:
                raise self._not_an_audit_log(
                    f"no audit.k8s.io Event in the first {self._non_empty_lines} non-empty lines{self._first_problem}"
                )
        return False

    def _skim(self, data: bytes, start: int, end: int) -> Iterator[dict]:
        """A run of lines of a known audit log. When every line is in the apiserver's own
        form (the usual case), only the lines holding a candidate word are looked at, and
        their line numbers are counted only if one of them is malformed."""
        lines = data.count(b"\n", start, end)
        if not _only_apiserver_events(data, start, end, lines):
            yield from self._line_by_line(data[start:end].split(b"\n")[:-1])
            return
        numbers = _LineNumbers(data, start, self.lines_read)
        parsed = 0
        for line_start, line_end in _lines_containing(data, start, end, CANDIDATE_WORDS):
            parsed += 1
            line = data[line_start:line_end]
            yield from self._checked(_json_or_none(line), line, partial(numbers.at, line_start))
        self.events_read += lines - parsed
        self.lines_read += lines

    def _line_by_line(self, lines: list[bytes]) -> Iterator[dict]:
        """The rules of _skim, for a run that also holds lines in another form."""
        for line in lines:
            self.lines_read += 1
            if CANDIDATE_WORDS[0] in line or CANDIDATE_WORDS[1] in line:
                yield from self._checked(_json_or_none(line), line, self.lines_read)
            elif line.startswith(APISERVER_EVENT_START) and line.endswith(b"}"):
                self.events_read += 1
            elif line.strip():
                yield from self._checked(_json_or_none(line), line, self.lines_read)

    def _checked(self, value, line: bytes, number: int | Callable[[], int]) -> Iterator[dict]:
        """The audit Events in a parsed line (None: not JSON); the rest is reported at `number`."""
        for found in self._events_or_problems(value, line):
            if isinstance(found, str):
                self._report(number if isinstance(number, int) else number(), found)
            else:
                self.events_read += 1
                yield found

    def _events_or_problems(self, value, line: bytes) -> Iterator[dict | str]:
        if value is None:
            yield f"not JSON: {_preview(line)}"
        elif is_audit_event_list(value):
            self.confirmed = True
            yield from _event_list_items(value)
        elif (problem := event_problem(value)) is not None:
            self.confirmed = self.confirmed or not_an_event(value) is None
            yield problem
        else:
            self.confirmed = True
            yield value

    # --- reading bytes ------------------------------------------------------------------

    def _blocks(self) -> Iterator[bytes]:
        """Decompressed blocks, checked against the total limit and, until the file is known
        to be an audit log, for binary data and the sniffing budget."""
        for block in _decoded_blocks(self.path, min(BLOCK, self.limits.line)):
            if not self.confirmed:
                if self._bytes_read >= self.limits.sniff_bytes:
                    raise self._not_an_audit_log(
                        f"no audit.k8s.io Event in the first {_size(self._bytes_read)}{self._first_problem}"
                    )
                # JSON text never holds a raw NUL. Lines are checked as they complete (_sniff);
                # a run without any newline (a gzip bomb of zeros) is refused here, unbuffered.
                if b"\n" not in block and b"\0" in block:
                    raise self._not_an_audit_log("binary data")
            self._bytes_read += len(block)
            if self._bytes_read > self.limits.total:
                raise InputError(
                    self.source,
                    f"more than {_size(self.limits.total)} of (decompressed) data, the limit for one audit log",
                )
            yield block

    def _whole_document(self):
        """The file parsed as one JSON document (within the document limit), else None."""
        parts, size = [], 0
        try:
            for block in _decoded_blocks(self.path):
                size += len(block)
                if size > self.limits.document:
                    self._document_too_large = True
                    return None
                parts.append(block)
        except _CorruptGzip:
            return None
        return _json_or_none(b"".join(parts))

    # --- bookkeeping --------------------------------------------------------------------

    def _report(self, line: int, problem: str) -> None:
        self.malformed_lines += 1
        if not self._first_problem:
            self._first_problem = f"; line {line}: {problem}"
        if self.malformed_lines <= self.limits.listed_malformed:
            self.malformed.append(Malformed(self.source, line, problem))

    def _close(self) -> None:
        if not self.confirmed:
            if self._bytes_read == 0:
                raise self._not_an_audit_log("empty file")
            if self._non_empty_lines == 0:
                raise self._not_an_audit_log("only blank lines")
            raise self._not_an_audit_log(
                f"no audit.k8s.io Event in its {self._non_empty_lines} non-empty line(s){self._first_problem}"
            )
        unlisted = self.malformed_lines - self.limits.listed_malformed
        if unlisted > 0:
            last = self.malformed[-1].line
            self.malformed.append(
                Malformed(
                    self.source,
                    last,
                    f"{unlisted} more malformed line(s) after this one "
                    f"not listed (only the first "
                    f"{self.limits.listed_malformed} of a file are)",
                )
            )

    def _not_an_audit_log(self, reason: str) -> InputError:
        if self._document_too_large:
            reason += f"; a JSON document over {_size(self.limits.document)} is not read whole"
        return InputError(self.source, f"not a Kubernetes audit log ({reason})")


def require_readable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an audit log file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from err


def _decoded_blocks(path: Path, size: int = BLOCK) -> Iterator[bytes]:
    """The file's bytes, gunzipped if it starts with the gzip magic, at most `size` at a time."""
    try:
        with open(path, "rb", buffering=0) as handle:
            first = handle.read(size)
            if first.startswith(GZIP_MAGIC):
                yield from _gunzip(handle, first, size)
                return
            while first:
                yield first
                first = handle.read(size)
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from err


def _gunzip(handle, data: bytes, size: int) -> Iterator[bytes]:
    """Decompress gzip members one after another, never more than `size` bytes per step
    (a small input can expand a thousandfold)."""
    decompressor = zlib.decompressobj(GZIP_WBITS)
    while True:
        if decompressor.eof:
            data = _next_member(handle, decompressor.unused_data)
            if not data:
                return
            if not data.startswith(GZIP_MAGIC):
                raise _CorruptGzip("data after a gzip member is not gzip")
            decompressor = zlib.decompressobj(GZIP_WBITS)
        at_end = False
        if not data:
            data = handle.read(GZIP_INPUT_READ)
            at_end = not data
        try:
            block = decompressor.decompress(data, size)
        except zlib.error as err:
            raise _CorruptGzip(str(err)) from None
        data = decompressor.unconsumed_tail
        if block:
            yield block
        elif at_end:
            raise _CorruptGzip("Compressed file ended before the end-of-stream marker was reached")


def _next_member(handle, data: bytes) -> bytes:
    """What follows a gzip member, without the NUL padding some writers leave between members."""
    while True:
        data = data.lstrip(b"\0")
        if len(data) >= len(GZIP_MAGIC):
            return data
        more = handle.read(GZIP_INPUT_READ)
        if not more:
            return data
        data += more


def _runs_of_lines(blocks: Iterator[bytes], line_limit: int) -> Iterator[tuple[bytes, int, int]]:
    """(data, start, end): data[start:end] is a run of whole lines, each ending in a newline
    (one is added to an unterminated last line). A line cut by a block boundary comes
    joined, as a run of its own; it alone can exceed a block, so it alone is measured."""
    pending: list[bytes] = []
    pending_size = 0
    for block in blocks:
        first_end = block.find(b"\n")
        if first_end == -1:
            pending.append(block)
            pending_size += len(block)
            if pending_size > line_limit:
                raise _LineTooLong()
            continue
        start = 0
        if pending:
            line = b"".join([*pending, block[: first_end + 1]])
            pending, pending_size = [], 0
            if len(line) - 1 > line_limit:
                raise _LineTooLong()
            yield line, 0, len(line)
            start = first_end + 1
        last_end = block.rfind(b"\n") + 1
        if start < last_end:
            yield block, start, last_end
        if last_end < len(block):
            pending, pending_size = [block[last_end:]], len(block) - last_end
    if pending:
        line = b"".join([*pending, b"\n"])
        yield line, 0, len(line)


# Between two lines in the apiserver's form: the end of one Event and the start of the next.
EVENT_JOINT = b"}\n" + APISERVER_EVENT_START


def _only_apiserver_events(data: bytes, start: int, end: int, lines: int) -> bool:
    """Whether every line of the run is `{"kind":"Event","apiVersion":"audit.k8s.io/...}`
    (no blank line, no other key order, no CR): three scans in C instead of a Python loop."""
    return (
        data.startswith(APISERVER_EVENT_START, start)
        and data.endswith(b"}\n", start, end)
        and data.count(EVENT_JOINT, start, end) == lines - 1
    )


def _lines_containing(data: bytes, start: int, end: int, words: tuple[bytes, ...]) -> Iterator[tuple[int, int]]:
    """(start, end without the newline) of each line of the run holding one of `words`, in
    order; each word is searched for once across the run."""
    hits = [data.find(word, start, end) for word in words]
    while found := [hit for hit in hits if hit != -1]:
        hit = min(found)
        line_start = max(data.rfind(b"\n", start, hit) + 1, start)
        line_end = data.find(b"\n", hit, end)
        yield line_start, line_end
        hits = [
            hit if hit == -1 or hit > line_end else data.find(word, line_end + 1, end) for hit, word in zip(hits, words)
        ]


class _LineNumbers:
    """Line numbers of positions in a run, asked for in increasing order: the newlines
    before them are counted once, and only when asked."""

    def __init__(self, data: bytes, start: int, lines_before: int):
        self.data, self.position, self.number = data, start, lines_before + 1

    def at(self, position: int) -> int:
        self.number += self.data.count(b"\n", self.position, position)
        self.position = position
        return self.number


def _event_list_items(document: dict) -> Iterator[dict | str]:
    items = document.get("items")
    if not isinstance(items, list):
        yield "EventList without an items list"
        return
    for index, item in enumerate(items):
        problem = event_problem(item)
        yield item if problem is None else f"items[{index}]: {problem}"


def _json_or_none(raw: bytes):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _preview(raw: bytes, limit: int = 60) -> str:
    text = raw[: limit * 4].decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _size(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"
