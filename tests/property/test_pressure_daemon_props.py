"""Invariants of the daemon's per-subscriber queue under any interleaving of events and partial writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memsched.live.pressure.protocol import Subscriber
from memsched.uapi.pressure import VmpressureConfig, VmpressureEvent, VmpressureLevel

LEVELS = st.sampled_from(list(VmpressureLevel))
OPS = st.lists(st.one_of(st.tuples(st.just("offer"), LEVELS), st.tuples(st.just("send"), st.integers(1, 8))))


@given(threshold=LEVELS, ops=OPS)
def test_bounded_memory_and_the_highest_level_is_never_dropped(
    threshold: VmpressureLevel, ops: list[tuple[str, int]]
) -> None:
    """Memory stays at one record plus one pending level, and every event at or above the threshold is
    covered by a record queued after it with a level at least as high."""
    sub = Subscriber(b"")
    sub.feed(VmpressureConfig(threshold=threshold).pack())
    delivered: list[int] = []  # levels of fully written records, in order
    partial = b""
    needs: list[tuple[int, int]] = []  # (records that cannot cover it, level)

    def send(n: int) -> None:
        nonlocal partial
        out = sub.outgoing[:n]
        sub.sent(len(out))
        partial += out
        while len(partial) >= 4:
            delivered.append(VmpressureEvent.unpack(partial[:4]).pressure)
            partial = partial[4:]

    for op, arg in ops:
        if op == "offer":
            if arg >= threshold:
                needs.append((len(delivered) + (1 if sub.outgoing else 0), arg))
            sub.offer(arg)
        else:
            send(arg)
        assert sub.buffered <= 8
    while sub.outgoing:
        send(4)
    assert partial == b""
    for skip, level in needs:
        assert max(delivered[skip:], default=0) >= level
    assert all(level >= threshold for level in delivered)
