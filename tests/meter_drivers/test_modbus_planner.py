"""The Modbus read planner: fewest requests, proved against an exhaustive search; bounds,
gap bridging, whole fields, and the one-read-per-field escape hatch."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter_drivers.modbus import (
    DataType,
    Field,
    InvalidValueError,
    RegisterRead,
    load_builtin,
    minimum_read_count,
    order_for,
    plan_reads,
)

TYPES_BY_SIZE = {1: DataType.UINT16, 2: DataType.FLOAT32, 4: DataType.UINT64}


def field(name: str, address: int, registers: int = 2, function: int = 3) -> Field:
    data_type = TYPES_BY_SIZE[registers]
    return Field(name, function, address, data_type, order_for("ABCD", data_type), Decimal(1), "")


# -- exhaustive reference -----------------------------------------------------------------------


def partitions(items: list[Field]) -> Iterator[list[list[Field]]]:
    """Every way to split ``items`` into non-empty groups (Bell-number many)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        for i in range(len(smaller)):
            yield [*smaller[:i], [first, *smaller[i]], *smaller[i + 1 :]]
        yield [[first], *smaller]


def group_is_one_read(
    group: list[Field], everything: list[Field], max_registers: int, max_gap: int
) -> bool:
    """Whether one read from the group's first to last register is allowed: one function
    code, at most max_registers, and no unread run wider than max_gap between the fields
    that lie inside it (fields of other groups inside it are read too)."""
    if len({f.function for f in group}) != 1:
        return False
    start, end = min(f.address for f in group), max(f.end for f in group)
    if end - start > max_registers:
        return False
    inside = sorted(
        (
            f
            for f in everything
            if f.function == group[0].function and start <= f.address and f.end <= end
        ),
        key=lambda f: f.address,
    )
    return all(b.address - a.end <= max_gap for a, b in itertools.pairwise(inside))


def brute_force_minimum(fields: list[Field], max_registers: int, max_gap: int) -> int:
    return min(
        len(p)
        for p in partitions(fields)
        if all(group_is_one_read(g, fields, max_registers, max_gap) for g in p)
    )


@st.composite
def field_sets(draw: st.DrawFn) -> tuple[list[Field], int, int]:
    """Up to 7 non-overlapping fields of 1, 2 or 4 registers over two function codes, with
    gaps of 0..10 registers, shuffled; and the device's max_registers and max_gap."""
    count = draw(st.integers(1, 7))
    ends = {3: draw(st.integers(0, 5)), 4: draw(st.integers(0, 5))}
    fields = []
    for i in range(count):
        function = draw(st.sampled_from([3, 4]))
        size = draw(st.sampled_from([1, 2, 4]))
        address = ends[function] + draw(st.integers(0, 10))
        fields.append(field(f"q{i}", address, size, function))
        ends[function] = address + size
    max_registers = draw(st.integers(4, 24))
    max_gap = draw(st.integers(0, 8))
    draw(st.randoms()).shuffle(fields)
    return fields, max_registers, max_gap


def assert_plan_is_sound(
    reads: list[RegisterRead], fields: list[Field], max_registers: int, max_gap: int
) -> None:
    carried = [f for r in reads for f in r.fields]
    assert sorted(carried, key=id) == sorted(fields, key=id), "each field in exactly one read"
    for r in reads:
        assert 1 <= r.count <= max_registers
        for f in r.fields:
            assert f.function == r.function
            assert r.address <= f.address and f.end <= r.end, "a field is never split"
        inside = sorted(r.fields, key=lambda f: f.address)
        assert inside[0].address == r.address and inside[-1].end == r.end
        assert all(b.address - a.end <= max_gap for a, b in itertools.pairwise(inside))


@settings(max_examples=150, deadline=None)
@given(field_sets())
def test_planner_uses_the_fewest_reads_an_exhaustive_search_finds(
    case: tuple[list[Field], int, int],
) -> None:
    fields, max_registers, max_gap = case
    reads = plan_reads(fields, max_registers=max_registers, max_gap=max_gap)
    assert_plan_is_sound(reads, fields, max_registers, max_gap)
    best = brute_force_minimum(fields, max_registers, max_gap)
    assert len(reads) == best
    assert minimum_read_count(fields, max_registers=max_registers, max_gap=max_gap) == best


@settings(max_examples=50, deadline=None)
@given(field_sets())
def test_escape_hatch_reads_each_field_on_its_own(case: tuple[list[Field], int, int]) -> None:
    fields, max_registers, max_gap = case
    reads = plan_reads(fields, max_registers=max_registers, max_gap=max_gap, merge=False)
    assert len(reads) == len(fields)
    assert {(r.address, r.count, r.function) for r in reads} == {
        (f.address, f.count, f.function) for f in fields
    }


# -- examples -----------------------------------------------------------------------------------


def spans(reads: list[RegisterRead]) -> list[tuple[int, int, int]]:
    return [(r.function, r.address, r.count) for r in reads]


def test_a_gap_up_to_max_gap_is_bridged_and_one_wider_is_not() -> None:
    fields = [field("a", 0), field("b", 5)]  # 3 unread registers between them
    assert spans(plan_reads(fields, max_registers=125, max_gap=3)) == [(3, 0, 7)]
    assert spans(plan_reads(fields, max_registers=125, max_gap=2)) == [(3, 0, 2), (3, 5, 2)]


def test_no_read_exceeds_max_registers() -> None:
    fields = [field(f"f{i}", 2 * i) for i in range(5)]  # 10 contiguous registers
    assert spans(plan_reads(fields, max_registers=4, max_gap=0)) == [
        (3, 0, 4),
        (3, 4, 4),
        (3, 8, 2),
    ]


def test_a_field_is_moved_whole_into_the_next_read_rather_than_split() -> None:
    fields = [field("a", 0, 2), field("wide", 2, 4)]
    assert spans(plan_reads(fields, max_registers=5, max_gap=0)) == [(3, 0, 2), (3, 2, 4)]


def test_function_codes_are_never_mixed_in_one_read() -> None:
    fields = [field("holding", 0, function=3), field("input", 2, function=4)]
    assert spans(plan_reads(fields, max_registers=125, max_gap=10)) == [(3, 0, 2), (4, 2, 2)]


def test_field_order_and_duplicates_do_not_change_the_plan() -> None:
    fields = [field(f"f{i}", 3 * i) for i in range(6)]
    shuffled = fields[:]
    random.Random(1).shuffle(shuffled)
    expected = spans(plan_reads(fields, max_registers=10, max_gap=1))
    assert spans(plan_reads(shuffled + shuffled, max_registers=10, max_gap=1)) == expected


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="exceeds max_registers 2"):
        plan_reads([field("wide", 0, 4)], max_registers=2, max_gap=0)
    with pytest.raises(InvalidValueError, match="overlap at register 0x0001"):
        plan_reads([field("a", 0), field("b", 1)], max_registers=10, max_gap=0)
    with pytest.raises(InvalidValueError, match="max_registers 126"):
        plan_reads([field("a", 0)], max_registers=126, max_gap=0)
    with pytest.raises(InvalidValueError, match="max_gap -1"):
        plan_reads([field("a", 0)], max_registers=10, max_gap=-1)


def test_sdm630_poll_is_four_reads_instead_of_fourteen() -> None:
    sdm630 = load_builtin("sdm630")
    reads = plan_reads(sdm630.fields, max_registers=sdm630.max_registers, max_gap=sdm630.max_gap)
    assert spans(reads) == [(3, 0x0002, 2), (4, 0x0000, 12), (4, 0x0034, 26), (4, 0x0156, 2)]
    assert len(plan_reads(sdm630.fields, max_registers=80, max_gap=20, merge=False)) == 14


def test_read_slices_each_fields_registers_out_of_the_reply() -> None:
    a, b = field("a", 10), field("b", 14, 1)
    (read,) = plan_reads([a, b], max_registers=10, max_gap=2)
    reply = [100, 101, 102, 103, 104]
    assert read.slice_for(a, reply) == [100, 101]
    assert read.slice_for(b, reply) == [104]
