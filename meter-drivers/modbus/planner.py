"""Which register reads cover a set of fields in the fewest requests (a pure function).

A read is one function code, a start address and a register count. Fields of one function
code sorted by address are merged left to right into the current read while (a) the read
would still span at most ``max_registers`` registers and (b) the unread gap before the next
field is at most ``max_gap`` registers; otherwise a new read starts. A field is never split.

Why greedy is optimal: for non-overlapping fields sorted by address, any read that covers
two fields also covers every field between them, so a read covers a *run* of consecutive
fields; and every sub-run of a feasible run is feasible (its span is shorter and its gaps are
a subset). For such "hereditary" segmentations, extending each read as far as it can go
ends the k-th greedy read no earlier than the k-th read of any other solution, so greedy
uses no more reads than the optimum. ``minimum_read_count`` computes that optimum by
dynamic programming over all segmentations, independently of the greedy code, and the
tests compare both with an exhaustive search over every partition of small field sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

from ..errors import InvalidValueError
from .profile import MAX_REGISTERS_PER_READ, Field


@dataclass(frozen=True)
class RegisterRead:
    """One read request: ``count`` registers from ``address`` with ``function`` (3 or 4),
    and the fields it carries."""

    function: int
    address: int
    count: int
    fields: tuple[Field, ...]

    @property
    def end(self) -> int:
        """First register after the read."""
        return self.address + self.count

    def slice_for(self, field: Field, registers: Sequence[int]) -> list[int]:
        """The field's registers out of this read's reply."""
        start = field.address - self.address
        return list(registers[start : start + field.count])


def plan_reads(
    fields: Iterable[Field], *, max_registers: int, max_gap: int, merge: bool = True
) -> list[RegisterRead]:
    """The fewest reads covering ``fields`` (ordered by function code, then address).

    ``max_registers`` is the device's largest read (registers, ≤ 125); ``max_gap`` the
    largest run of unwanted registers (registers) a read may include to join two fields;
    ``merge=False`` is the escape hatch for devices that reject any multi-field read: one
    read per field.
    """
    ordered = _checked(fields, max_registers, max_gap)
    reads: list[RegisterRead] = []
    for function, group in groupby(ordered, key=lambda f: f.function):
        run: list[Field] = []
        for field in group:
            joins = (
                merge
                and bool(run)
                and field.address - run[-1].end <= max_gap
                and field.end - run[0].address <= max_registers
            )
            if joins:
                run.append(field)
                continue
            if run:
                reads.append(_read(function, run))
            run = [field]
        reads.append(_read(function, run))
    return reads


def minimum_read_count(fields: Iterable[Field], *, max_registers: int, max_gap: int) -> int:
    """The least number of reads that can cover ``fields``, by exhaustive dynamic
    programming over every way to cut each function code's sorted fields into runs
    (O(n²)); the reference the planner is checked against."""
    ordered = _checked(fields, max_registers, max_gap)
    total = 0
    for _function, group in groupby(ordered, key=lambda f: f.function):
        run = list(group)
        # best[j] = fewest reads covering run[:j]
        best = [0] + [len(run) + 1] * len(run)
        for j in range(1, len(run) + 1):
            last = run[j - 1]
            widest_gap = 0
            for i in range(j, 0, -1):  # candidate read run[i-1 .. j-1]
                first = run[i - 1]
                if i < j:
                    widest_gap = max(widest_gap, run[i].address - first.end)
                if last.end - first.address > max_registers or widest_gap > max_gap:
                    break  # a longer run only grows the span and keeps the gap
                best[j] = min(best[j], best[i - 1] + 1)
        total += best[len(run)]
    return total


def _read(function: int, run: list[Field]) -> RegisterRead:
    start = run[0].address
    return RegisterRead(function, start, run[-1].end - start, tuple(run))


def _checked(fields: Iterable[Field], max_registers: int, max_gap: int) -> list[Field]:
    if not 1 <= max_registers <= MAX_REGISTERS_PER_READ:
        raise InvalidValueError(
            f"max_registers {max_registers}: expected 1..{MAX_REGISTERS_PER_READ}"
        )
    if max_gap < 0:
        raise InvalidValueError(f"max_gap {max_gap}: expected >= 0 registers")
    unique = list(dict.fromkeys(fields))
    ordered = sorted(unique, key=lambda f: (f.function, f.address))
    for f in ordered:
        if f.count > max_registers:
            raise InvalidValueError(
                f"field {f.quantity} ({f.count} registers) exceeds max_registers {max_registers}"
            )
    for a, b in pairwise(ordered):
        if a.function == b.function and b.address < a.end:
            raise InvalidValueError(
                f"fields {a.quantity} and {b.quantity} overlap at register {b.address:#06x} "
                f"(function {b.function})"
            )
    return ordered
