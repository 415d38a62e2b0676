r"""Gilbarco exchanges: jobs, steps and the incremental reply reader (sans-IO).

A Gilbarco exchange is one master word (or one master block) and, depending on the word, one reply
whose kind only the request tells (PROTOCOLS.md 2.2).  A :class:`Job` is the list of exchanges one
agent command or one read needs; for example an authorization with a preset::

    2p  ->  Dp                       Step(2p, SEND_DATA)
    FF E3 F1 F4 F8 d0..d5 FB l F0    Step(block, NONE)        sent right after Dp
    0p  ->  7p (still CALL)          Step(0p, CALL)           100 ms later: guard
    1p                               Step(1p, NONE)

:class:`ReplyReader` collects the reply to one request::

    fixed length n (1, 8, 9 words)  complete when n words ending in the right place have arrived;
                                    with more than n words the last n are the reply, the rest garbage
    block (4p, 5p)                  complete at an F0 preceded somewhere by FF: the reply is the
                                    span from the last FF before that F0 (FF never occurs inside a
                                    block); bytes before it are garbage

The buffer is bounded (``max_words``); overflow is reported as garbage and dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from drivers.base import Command
from drivers.gilbarco.codec import Word

__all__ = ["Job", "Reply", "ReplyReader", "Step"]


class Reply(enum.Enum):
    """What the pump answers to a step."""

    #: No reply (1p, 3p, FC, a data block).
    NONE = "none"
    #: One status word, any state.
    STATUS = "status"
    #: One status word that must be ``Dp`` (reply to 2p).
    SEND_DATA = "send_data"
    #: One status word that must be ``7p`` (CALL); else the job is aborted (preset guard).
    CALL = "call"
    #: A transaction block (33 or 35 words; 39 in extended mode).
    TRANSACTION = "transaction"
    #: A totals block (30 or 42 words per hose).
    TOTALS = "totals"
    #: 8 words.
    MONEY = "money"
    #: 9 words.
    VOLUME = "volume"

    @property
    def max_words(self) -> int:
        return _WORDS[self]


_WORDS = {
    Reply.NONE: 0,
    Reply.STATUS: 1,
    Reply.SEND_DATA: 1,
    Reply.CALL: 1,
    Reply.TRANSACTION: 40,
    Reply.TOTALS: 42 * 16 + 4,
    Reply.MONEY: 8,
    Reply.VOLUME: 9,
}


@dataclass(frozen=True)
class Step:
    """One master transmission; ``after_s`` = earliest start after the previous step ended."""

    data: bytes
    reply: Reply
    after_s: float = 0.0


@dataclass(frozen=True)
class Job:
    """Steps for one command or read; ``purpose``: command, finish, progress, totals, prices, estop."""

    steps: tuple[Step, ...]
    command: Command | None = None
    purpose: str = "command"


class ReplyReader:
    """Collects the reply to one request (see module docstring)."""

    def __init__(self, reply: Reply, max_words: int = 1024) -> None:
        self.reply = reply
        self.max_words = max_words
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[bytes | None, bytes]:
        """-> (complete reply or None, garbage words dropped)."""
        self._buf += data
        buf = self._buf
        if self.reply in (Reply.TRANSACTION, Reply.TOTALS):
            return self._block()
        n = self.reply.max_words
        ready = len(buf) >= n and (n == 1 or buf[-2] == Word.LRC_NEXT)
        if ready:
            reply, garbage = bytes(buf[-n:]), bytes(buf[:-n])
            buf.clear()
            return reply, garbage
        return None, self._overflow()

    def _block(self) -> tuple[bytes | None, bytes]:
        buf = self._buf
        garbage = b""
        while True:
            end = buf.find(Word.END)
            if end < 0:
                return None, garbage + self._overflow()
            start = buf.rfind(Word.START, 0, end)
            if start < 0:
                garbage += bytes(buf[: end + 1])
                del buf[: end + 1]
                continue
            reply = bytes(buf[start : end + 1])
            garbage += bytes(buf[:start])
            del buf[: end + 1]
            return reply, garbage

    def _overflow(self) -> bytes:
        if len(self._buf) <= self.max_words:
            return b""
        dropped = bytes(self._buf)
        self._buf.clear()
        return dropped
