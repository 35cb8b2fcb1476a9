"""Stream framing for DL/T645: find whole frames in bytes that arrive in arbitrary pieces.

Noise on RS-485 is normal input, not an exception: the parser skips FE preambles and any
garbage, and resynchronises after a false start by dropping one byte and rescanning.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from ..errors import FrameError
from .frame import (
    BAD_CHECKSUM,
    MAX_DATA_LENGTH,
    NEED_MORE,
    PREAMBLE,
    START,
    Frame,
    frame_at,
    frame_status,
)


class FrameParser:
    """Incremental frame finder: ``feed(bytes)``, then ``next_frame()`` until it returns None.

    Scanning happens in ``feed``: complete frames are queued, and only the unfinished tail
    (at most one frame, 12 + ``max_data_length`` bytes) stays buffered, so memory is bounded
    whatever comes in and the work is linear in the input — each byte is skipped by
    ``bytearray.find`` or starts at most one candidate whose checks are bounded by the
    frame length.

    A candidate is a 68 followed seven bytes later by another 68, an L no greater than
    ``max_data_length``, a checksum that matches and a closing 16. Anything else drops the
    leading 68 and the scan resumes one byte later, because a real frame may start inside a
    false one.

    Frames with a bad checksum are not surfaced: they are dropped like garbage and counted
    in ``checksum_errors`` (a corrupt reply is for the caller's retry logic, which also has
    to cope with replies that never come). ``garbage_bytes`` counts discarded bytes other
    than FE preamble bytes.
    """

    def __init__(self, max_data_length: int = MAX_DATA_LENGTH) -> None:
        self.max_data_length = max_data_length
        self.garbage_bytes = 0
        self.checksum_errors = 0
        self._buffer = bytearray()
        self._frames: deque[Frame] = deque()

    @property
    def buffered(self) -> int:
        """Bytes held back as the possible start of a frame that is still arriving."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add received bytes; any frames they complete become available to ``next_frame``."""
        buf = self._buffer
        buf += data
        position = 0
        while True:
            start = buf.find(START, position)
            if start < 0:
                self._discard(position, len(buf))
                position = len(buf)
                break
            self._discard(position, start)
            status = frame_status(buf, start, self.max_data_length)
            if status == NEED_MORE:
                position = start
                break
            if status > 0:
                try:
                    self._frames.append(frame_at(buf, start, status))
                except FrameError:
                    pass  # well-framed but not a frame (non-BCD address): noise after all
                else:
                    position = start + status
                    continue
            if status == BAD_CHECKSUM:
                self.checksum_errors += 1
            self.garbage_bytes += 1
            position = start + 1
        del buf[:position]

    def next_frame(self) -> Frame | None:
        """The oldest complete frame not yet taken, or None until more bytes arrive."""
        return self._frames.popleft() if self._frames else None

    def __iter__(self) -> Iterator[Frame]:
        """Drain the frames available now."""
        while self._frames:
            yield self._frames.popleft()

    def _discard(self, start: int, end: int) -> None:
        if end > start:
            self.garbage_bytes += end - start - self._buffer.count(PREAMBLE, start, end)
