"""Reading a serial console on from where the last answer ended, and judging a boot by its lines.

``instances.getSerialPortOutput`` (discovery documents ``compute.v1.json``/``compute.beta.json``,
revision 20260501) answers ``contents``, ``start`` and ``next``:

- ``next`` is "the position of the next byte of content, regardless of whether the content exists,
  following the output returned"; it is what the next request sends as ``start``. The reader keeps it
  and nothing else as its position, so no byte is asked for twice (``len(contents)`` counts characters,
  not bytes, and is never used as an offset).
- The service keeps the last 1 MB; "if the requested start position refers to discarded output, the
  start position is adjusted to the oldest output still available, and the adjusted start position is
  returned as the ``start`` property". An answer whose ``start`` is later than the one asked for means
  bytes were lost in between: the reader counts them (``skipped``) instead of failing.
- Both are int64, which JSON carries as strings (``"format": "int64", "type": "string"``); numbers are
  accepted too.

Console text is untrusted: what a boot check matches and shows is the text with terminal escapes and
control characters removed (:func:`clean_line`), lines cut at :data:`MAX_LINE_CHARS`, and the tail it
quotes bounded (:data:`TAIL_LINES`, :data:`TAIL_CHARS`) and scrubbed of anything shaped like key material.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from airflow_machine_images.api.redaction import redact_key_material
from airflow_machine_images.exceptions import MalformedResponseError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DEFAULT_BOOT_PATTERN",
    "DEFAULT_FAILURE_PATTERN",
    "BootVerdict",
    "ConsoleChunk",
    "ConsoleReader",
    "clean_line",
]

#: The default "booted" line, searched in each console line (``re.search``). One alternative per image family:
#:
#: - systemd reaching ``multi-user.target`` (its unit's ``Description=Multi-User System``; systemd logs
#:   "Reached target Multi-User System." to the console, newer releases "Reached target
#:   multi-user.target - Multi-User System.");
#: - a getty login prompt on the serial console (``serial-getty@ttyS0``: ``HOSTNAME login:``, which
#:   has no newline after it: the unfinished last line is matched too);
#: - cloud-init's final message (``cc_final_message`` default: "Cloud-init v. VERSION finished at ...");
#: - Windows images of Compute Engine (GCE's instance setup logs to COM1 that the instance "is ready to
#:   use"; the exact wording is unverified, so both spellings seen in the wild are accepted).
DEFAULT_BOOT_PATTERN = (
    r"Reached target .*Multi-User System"
    r"|\blogin: *$"
    r"|Cloud-init v\. \S+ finished at"
    r"|Windows is ready to use|Instance setup finished\..* is ready to use"
)
#: The default "will not boot" line: the Linux kernel's panic message (``kernel/panic.c``: "Kernel panic -
#: not syncing: ..."), and a Windows stop error on the serial console (EMS/SAC prints the bug check).
DEFAULT_FAILURE_PATTERN = r"Kernel panic - not syncing|\bSTOP: 0x[0-9A-Fa-f]{8}"
#: The longest console line matched or shown (longer ones are cut; a boot line is short).
MAX_LINE_CHARS = 4096
#: How many of the last console lines a failure quotes, and at most how many characters.
TAIL_LINES = 20
TAIL_CHARS = 2000
#: Shown lines are cut to this many characters.
_SHOWN_LINE_CHARS = 200

#: Terminal escape sequences (CSI, OSC, two-character ESC sequences), then any other control character
#: but tab, and the Unicode controls that reorder or hide text (bidirectional overrides, zero-width marks).
_ESCAPES_PATTERN: Final = r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
_CONTROLS_PATTERN: Final = "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]"


def clean_line(line: str) -> str:
    """One console line as it may be matched and shown: no escapes, no control characters, bounded.

    :param line: a line of console output, without its line break.
    """
    return re.sub(_CONTROLS_PATTERN, "", re.sub(_ESCAPES_PATTERN, "", line))[:MAX_LINE_CHARS]


def _offset(answer: Mapping[str, Any], name: str) -> int | None:
    """An int64 field of the answer (a string in JSON, or a number), or None when absent.

    :param answer: the SerialPortOutput resource.
    :param name: ``start`` or ``next``.
    :raises MalformedResponseError: the field is not a whole number.
    """
    value = answer.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise MalformedResponseError(f"instances.getSerialPortOutput answered a {name!r} that is not a number")
    return int(value)


@dataclass(frozen=True)
class ConsoleChunk:
    """One answer of ``instances.getSerialPortOutput``.

    :param contents: the text returned.
    :param start: where it starts (later than asked when the service had discarded the bytes asked for).
    :param next: where the next read starts.
    """

    contents: str
    start: int
    next: int

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], requested_start: int) -> ConsoleChunk:
        """Read an answer; ``start`` defaults to the start asked for, ``next`` must be there.

        :param answer: the SerialPortOutput resource.
        :param requested_start: the ``start`` sent.
        :raises MalformedResponseError: no ``next``, or offsets that go backwards.
        """
        contents = answer.get("contents") or ""
        if not isinstance(contents, str):
            raise MalformedResponseError("instances.getSerialPortOutput answered 'contents' that is not text")
        start = _offset(answer, "start")
        start = requested_start if start is None else start
        next_ = _offset(answer, "next")
        if next_ is None or next_ < start or start < 0:
            raise MalformedResponseError(
                f"instances.getSerialPortOutput answered start={start}, next={next_} for a read from {requested_start}"
            )
        return cls(contents=contents, start=start, next=next_)


@dataclass(frozen=True)
class BootVerdict:
    """What the console said about the boot.

    :param booted: True: the boot pattern matched; False: the failure pattern matched.
    :param line: the (cleaned) line that matched.
    """

    booted: bool
    line: str


@dataclass
class ConsoleReader:
    """A console read on from ``position``, line by line, looking for a boot or failure line.

    :param boot_pattern: the compiled "booted" pattern, searched in each line.
    :param failure_pattern: the compiled "will not boot" pattern, or None.
    :param position: the next byte to ask for (the last answer's ``next``).
    """

    boot_pattern: re.Pattern[str]
    failure_pattern: re.Pattern[str] | None
    position: int = 0
    #: Bytes the service had discarded before they could be read (its 1 MB buffer overflowed).
    skipped: int = 0
    #: Answers taken.
    reads: int = 0
    #: The verdict of the first deciding line, once one was seen (later answers do not change it).
    verdict: BootVerdict | None = None
    _partial: str = ""
    _recent: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def take(self, chunk: ConsoleChunk) -> BootVerdict | None:
        """Take one answer (asked from :attr:`position`); the verdict of its first deciding line, if any.

        Lines are matched in console order; the unfinished last line (a login prompt has no line break)
        is matched too, and again once it is finished.

        :param chunk: the answer.
        """
        self.reads += 1
        if chunk.start > self.position:
            self.skipped += chunk.start - self.position
            self._partial = ""  # what it continued was discarded
        self.position = max(self.position, chunk.next)
        pieces = (self._partial + chunk.contents.replace("\r\n", "\n").replace("\r", "\n")).split("\n")
        self._partial = pieces.pop()[-MAX_LINE_CHARS:]
        verdict = None
        for raw in pieces:
            line = clean_line(raw)
            if line.strip():
                self._recent.append(line)
            verdict = verdict or self._judge(line)
        self.verdict = self.verdict or verdict or self._judge(clean_line(self._partial))
        return self.verdict

    def _judge(self, line: str) -> BootVerdict | None:
        if self.failure_pattern is not None and self.failure_pattern.search(line):
            return BootVerdict(booted=False, line=line)
        if self.boot_pattern.search(line):
            return BootVerdict(booted=True, line=line)
        return None

    def pause(self, chunk: ConsoleChunk, poll_interval: float) -> float:
        """Seconds to wait before the next read: ``poll_interval`` after an answer with nothing new, at most a
        second after one with new output (more of the boot may be waiting).

        :param chunk: the answer just taken.
        :param poll_interval: the task's poll interval.
        """
        return min(poll_interval, 1.0) if chunk.contents else poll_interval

    def failure_message(self, where: str, why: str) -> str:
        """The message of a failed boot check: what failed, how far the console was read, its last lines.

        :param where: the instance, e.g. ``instance web-1 in us-central1-a (project p)``.
        :param why: what was (not) seen.
        """
        lost = f", {self.skipped} byte(s) discarded by the service before they could be read" if self.skipped else ""
        return (
            f"Boot of {where} not verified: {why} (serial console read to byte {self.position} in "
            f"{self.reads} read(s){lost}). Last console lines:\n{self.tail()}"
        )

    def tail(self) -> str:
        """The last console lines (at most :data:`TAIL_LINES`, :data:`TAIL_CHARS` characters), cleaned and
        scrubbed of anything shaped like key material; ``(no console output)`` when there were none."""
        lines = list(self._recent)
        partial = clean_line(self._partial)
        if partial.strip():
            lines.append(partial)
        shown: list[str] = []
        size = 0
        for line in reversed(lines[-TAIL_LINES:]):
            cut = line if len(line) <= _SHOWN_LINE_CHARS else line[: _SHOWN_LINE_CHARS - 3] + "..."
            if size + len(cut) + 1 > TAIL_CHARS:
                break
            shown.append(cut)
            size += len(cut) + 1
        if not shown:
            return "(no console output)"
        return redact_key_material("\n".join(reversed(shown)))
