"""Property tests of the DL/T645 codec: round trips over the catalogue, and stream framing
that survives noise, chunking and hostile bytes."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meter_drivers.dlt645 import (
    BLOCKS,
    CATALOGUE,
    CalendarFormat,
    DataItem,
    DigitsFormat,
    DriverError,
    Frame,
    FrameParser,
    NumberFormat,
    ReadReply,
    Value,
    Version,
    address_from_wire,
    address_to_wire,
    build_read,
    build_read_reply,
    decode_frame,
    decode_reply,
    encode_frame,
    items_for,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every DI a reply can carry: each catalogue item, and each block with its members.
READABLE = [
    (version, di, items_for(di, version))
    for version in Version
    for di in [*CATALOGUE[version], *BLOCKS[version]]
]

addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)


def values_for(fmt: NumberFormat | DigitsFormat | CalendarFormat) -> st.SearchStrategy[Value]:
    """Any value the format can carry."""
    if isinstance(fmt, NumberFormat):
        bound = int(fmt.limit.scaleb(fmt.decimals)) - 1
        low = -bound if fmt.signed else 0
        return st.integers(low, bound).map(lambda n: Decimal(n).scaleb(-fmt.decimals))
    if isinstance(fmt, DigitsFormat):
        return st.text(alphabet="0123456789", min_size=2 * fmt.length, max_size=2 * fmt.length)
    if "YY" not in fmt.parts:
        return st.times().map(lambda t: time(t.hour, t.minute, t.second))
    # With a date, None is "not set" (all-zero bytes), e.g. a demand not yet recorded.
    if "hh" not in fmt.parts:
        return st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31))
    keep_seconds = "ss" in fmt.parts
    stamps = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))
    return st.none() | stamps.map(
        lambda d: d.replace(second=d.second if keep_seconds else 0, microsecond=0)
    )


frames = st.builds(
    Frame,
    address=addresses,
    control=st.integers(0, 255),
    data=st.binary(max_size=60),
)


@pytest.mark.parametrize(
    ("version", "di", "items"), READABLE, ids=[f"{v.value}-{di}" for v, di, _ in READABLE]
)
@settings(max_examples=25, deadline=None)
@given(address=addresses, data=st.data())
def test_every_catalogue_di_survives_encode_and_decode(
    version: Version, di: str, items: tuple[DataItem, ...], address: str, data: st.DataObject
) -> None:
    fields = [f for item in items for f in item.fields]
    values = [data.draw(values_for(f.format), label=f.quantity) for f in fields]

    raw = encode_frame(build_read_reply(address, di, values, version))
    reply = decode_reply(decode_frame(raw), version)

    assert isinstance(reply, ReadReply)
    assert reply.address == address and reply.di == di
    assert [r.value for r in reply.readings] == values
    assert [r.quantity for r in reply.readings] == [f.quantity for f in fields]
    assert [r.di for r in reply.readings] == [i.di for i in items for _ in i.fields]


@FAST
@given(addresses)
def test_address_round_trips_through_the_wire(address: str) -> None:
    assert address_from_wire(address_to_wire(address)) == address


@FAST
@given(frames, st.integers(0, 4))
def test_frame_round_trips_through_the_wire(frame: Frame, preamble: int) -> None:
    assert decode_frame(encode_frame(frame, preamble)) == frame


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_parser_fed_arbitrary_bytes_raises_nothing_and_terminates(chunks: list[bytes]) -> None:
    parser = FrameParser()
    total = 0
    try:
        for chunk in chunks:
            parser.feed(chunk)
            total += len(chunk)
            found = list(parser)
            for frame in found:
                assert decode_frame(encode_frame(frame)) == frame
            assert parser.buffered <= 12 + parser.max_data_length
    except DriverError:
        pass  # the codec's own errors are allowed; anything else fails the test
    assert parser.garbage_bytes <= total


# Enough non-68 bytes to settle any false start still waiting for its promised length.
FLUSH = b"\x00" * 260


@FAST
@given(frames, st.binary(max_size=80), st.binary(max_size=80), st.integers(0, 4))
def test_valid_frame_surrounded_by_garbage_is_found(
    frame: Frame, before: bytes, after: bytes, preamble: int
) -> None:
    parser = FrameParser()

    parser.feed(before + encode_frame(frame, preamble) + after + FLUSH)

    assert frame in list(parser)


@FAST
@given(frames, st.integers(0, 4))
def test_frame_split_anywhere_still_parses(frame: Frame, preamble: int) -> None:
    raw = encode_frame(frame, preamble)
    for cut in range(len(raw) + 1):
        parser = FrameParser()
        parser.feed(raw[:cut])
        early = list(parser)
        parser.feed(raw[cut:])
        assert early + list(parser) == [frame]
        assert parser.garbage_bytes == 0


@FAST
@given(
    st.lists(st.tuples(frames, st.binary(max_size=40), st.integers(0, 4)), min_size=1, max_size=12),
    st.lists(st.integers(1, 64), min_size=1, max_size=20),
)
def test_many_frames_with_noise_between_are_all_found_in_order(
    stream: list[tuple[Frame, bytes, int]], chunk_sizes: list[int]
) -> None:
    raw = b"".join(noise + encode_frame(frame, preamble) for frame, noise, preamble in stream)
    raw += FLUSH
    parser = FrameParser()
    found: list[Frame] = []
    position = 0
    sizes = iter(chunk_sizes * (len(raw) // min(chunk_sizes) + 1))
    while position < len(raw):
        size = next(sizes)
        parser.feed(raw[position : position + size])
        position += size
        found.extend(parser)

    expected = [frame for frame, _, _ in stream]
    assert [f for f in found if f in expected] == expected


@FAST
@given(addresses, st.sampled_from(sorted(CATALOGUE[Version.V2007])))
def test_read_request_round_trips_for_every_2007_di(address: str, di: str) -> None:
    frame = build_read(address, di)

    assert decode_frame(encode_frame(frame)) == frame
