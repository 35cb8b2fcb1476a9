import pytest

from edge.outbox import OutboxStore
from edge.wire import ClockState, ReadingsPayload, open_envelope, seal
from tests.support.factories import T0, reading


def sealer(identity):
    def _seal(seq, epoch, readings):
        p = ReadingsPayload(
            gateway="gw1",
            kid=identity.kid,
            seq=seq,
            epoch=epoch,
            sent_at=T0,
            clock=ClockState.SYNCED,
            readings=readings,
        )
        return seal(p, identity.private_key)

    return _seal


def test_readings_are_sealed_oldest_first_in_bounded_batches(tmp_path, identity):
    box = OutboxStore(tmp_path / "o.sqlite")
    box.add([reading(minute=m) for m in range(5)])
    first = box.seal_next(sealer(identity), epoch=1, max_readings=3)
    second = box.seal_next(sealer(identity), epoch=1, max_readings=3)
    assert (first.seq, first.readings, second.seq, second.readings) == (0, 3, 1, 2)
    assert box.seal_next(sealer(identity), epoch=1, max_readings=3) is None
    minutes = [r.read_at.minute for r in open_envelope(first.body, identity.public_key).readings]
    assert minutes == [0, 1, 2]


def test_seq_survives_a_restart_and_never_repeats(tmp_path, identity):
    path = tmp_path / "o.sqlite"
    box = OutboxStore(path)
    box.add([reading()])
    box.seal_next(sealer(identity), 1, 10)
    box.close()
    box = OutboxStore(path)
    box.add([reading(minute=1)])
    assert box.seal_next(sealer(identity), 2, 10).seq == 1
    assert box.start_epoch() == 1 and box.start_epoch() == 2


def test_unacknowledged_envelope_is_resent_byte_for_byte_after_restart(tmp_path, identity):
    path = tmp_path / "o.sqlite"
    box = OutboxStore(path)
    box.add([reading(minute=m) for m in range(3)])
    sealed = box.seal_next(sealer(identity), 1, 2)
    box.close()
    box = OutboxStore(path)
    assert [e.body for e in box.unacked()] == [sealed.body]
    box.acknowledge(sealed.seq)
    assert box.unacked() == []
    assert box.depth().pending_readings == 1


def test_failed_sealing_keeps_the_readings_and_the_seq(tmp_path, identity):
    box = OutboxStore(tmp_path / "o.sqlite")
    box.add([reading()])

    def broken(seq, epoch, readings):
        raise OSError("disk full")

    with pytest.raises(OSError):
        box.seal_next(broken, 1, 10)
    assert box.depth().pending_readings == 1
    assert box.seal_next(sealer(identity), 1, 10).seq == 0


def test_depth_reports_the_age_of_the_oldest_item(tmp_path):
    now = [1000.0]
    box = OutboxStore(tmp_path / "o.sqlite", wall_clock=lambda: now[0])
    assert box.depth().oldest_age_s == 0.0
    box.add([reading()])
    now[0] = 1042.5
    assert box.depth().oldest_age_s == 42.5
