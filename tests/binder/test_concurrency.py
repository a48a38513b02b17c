"""Real threads: the shrinker runs while other processes allocate and the owner reads.

* a sender process allocates buffers in the receiver's mapping (as a transaction
  does), fills them, checks them and frees them, over and over;
* the receiver holds a few buffers "delivered" (committed) and keeps reading them
  through its own mapping;
* the shrinker reclaims whatever is Available, all the time.

The shrinker must never free a page a buffer uses (the receiver's reads never fault and
never see other bytes), nothing may trip a check (no lock-order inversion, no sleep in
atomic context, no use after free), and at the end nothing is leaked.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from ownership.page import PAGE_SIZE

from ..binder_harness import BinderWorld

DURATION = 1.5


def _runner(errors: list[BaseException], fn: Callable[[], None]) -> Callable[[], None]:
    def body() -> None:
        try:
            fn()
        except BaseException as e:
            # Kept, and re-raised by the test on its own thread.
            errors.append(e)

    return body


def test_shrinker_races_allocations_and_user_reads(world: BinderWorld) -> None:
    receiver = world.open("receiver", map_size=32 * PAGE_SIZE)
    sender = world.kernel.spawn_process("sender")
    proc = receiver.proc
    stop = threading.Event()
    errors: list[BaseException] = []
    stats = {"allocs": 0, "reads": 0, "shrunk": 0}

    # Buffers delivered to the receiver, which it reads until the end.
    delivered: list[tuple[int, bytes]] = []
    with sender.as_current():
        for i in range(3):
            a = proc.buffer_alloc(i, PAGE_SIZE + 100 * i, False, sender.pid).success()
            data = bytes([0x40 + i]) * a.size
            a.write(0, data)
            delivered.append((a.ptr, data))
            a.keep_alive()

    def send() -> None:
        rng = random.Random(1)
        with sender.as_current():
            while not stop.is_set():
                size = rng.choice([8, 200, PAGE_SIZE - 8, PAGE_SIZE + 8, 3 * PAGE_SIZE])
                a = proc.buffer_alloc(100, size, rng.random() < 0.3, sender.pid)
                pattern = bytes((stats["allocs"] + j) % 256 for j in range(min(size, 512)))
                a.write(size - len(pattern), pattern)
                assert a.read(size - len(pattern), len(pattern)) == pattern
                a.drop()
                stats["allocs"] += 1

    def read() -> None:
        with receiver.current():
            while not stop.is_set():
                for ptr, data in delivered:
                    assert receiver.task.read_user(ptr, len(data)) == data
                    stats["reads"] += 1

    def shrink() -> None:
        rng = random.Random(2)
        while not stop.is_set():
            stats["shrunk"] += world.kernel.shrink(rng.randint(1, 16))
            time.sleep(0)

    threads = [
        threading.Thread(target=_runner(errors, f), name=f.__name__) for f in (send, read, shrink)
    ]
    for t in threads:
        t.start()
    time.sleep(DURATION)
    stop.set()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    assert stats["allocs"] > 10 and stats["reads"] > 10 and stats["shrunk"] > 0, stats

    # The delivered buffers are intact and their pages still Used; give them back.
    with receiver.current():
        for ptr, data in delivered:
            assert receiver.task.read_user(ptr, len(data)) == data
            back = proc.buffer_get(ptr)
            assert back is not None
            back.drop()
    assert world.kernel.check_consistency() == []
    sender.exit()
