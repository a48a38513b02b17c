"""Bad input at the UAPI: only errnos come back, never an internal crash.

Random ioctl numbers and argument addresses, random `binder_write_read` structs
(unmapped, wrapping, huge sizes), and random command streams (known codes with random
payloads, unknown codes) must each end in success or a `KernelError` with the errno the
kernel would return, and the process must keep working afterwards.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from binder import uapi as u
from binder.client import BinderClient, Parcel
from ownership.errors import EFAULT, EINVAL, KernelError

from ..binder_harness import world

U64 = st.integers(0, (1 << 64) - 1)
CODES = [
    u.BC_TRANSACTION,
    u.BC_REPLY,
    u.BC_FREE_BUFFER,
    u.BC_INCREFS,
    u.BC_ACQUIRE,
    u.BC_RELEASE,
    u.BC_DECREFS,
    u.BC_INCREFS_DONE,
    u.BC_ACQUIRE_DONE,
    u.BC_REQUEST_DEATH_NOTIFICATION,
    u.BC_CLEAR_DEATH_NOTIFICATION,
    u.BC_DEAD_BINDER_DONE,
    u.BC_TRANSACTION_SG,
    u.BC_EXIT_LOOPER,
]
SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def test_random_ioctls_give_errnos() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        cmds = st.sampled_from(
            [
                u.BINDER_WRITE_READ,
                u.BINDER_VERSION,
                u.BINDER_FREEZE,
                u.BINDER_GET_FROZEN_INFO,
                u.BINDER_SET_MAX_THREADS,
                u.BINDER_GET_EXTENDED_ERROR,
                u.BINDER_GET_NODE_DEBUG_INFO,
                u.BINDER_GET_NODE_INFO_FOR_REF,
                0x6201,
                0xC0FF6299,
            ]
        ) | st.integers(0, 0xFFFF_FFFF)

        @SETTINGS
        @given(cmds, U64)
        def check(cmd: int, arg: int) -> None:
            try:
                app.file.ioctl(cmd, arg)
            except KernelError as e:
                assert e.errno in (
                    EFAULT,
                    EINVAL,
                    1,
                    2,
                    3,
                    11,
                    25,
                )  # EPERM ENOENT ESRCH EAGAIN ENOTTY

        check()
        assert app.transact(h, 1).ok


def test_random_write_read_structs_give_errnos() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")

        @SETTINGS
        @given(U64, U64, U64, st.sampled_from([0, 8, 64]))
        def check(write_buffer: int, write_size: int, read_buffer: int, read_size: int) -> None:
            # Reads are kept small and non-blocking-safe: nothing is queued for us.
            bwr = u.binder_write_read(write_size, 0, write_buffer, 0, 0, read_buffer)
            try:
                app.ioctl_struct(u.BINDER_WRITE_READ, bwr)
            except KernelError as e:
                assert e.errno in (EFAULT, EINVAL)

        check()
        assert app.transact(h, 1).ok


def test_random_command_streams_give_errnos() -> None:
    with world() as w:
        w.service("s", 0x10, lambda c, t: Parcel())
        app = w.spawn("client")
        h = w.lookup(app, "s")
        stream = st.lists(
            st.tuples(st.sampled_from(CODES) | st.integers(0, 0xFFFF_FFFF), st.binary(max_size=80)),
            max_size=4,
        )

        @SETTINGS
        @given(stream)
        def check(cmds: list[tuple[int, bytes]]) -> None:
            out = b""
            for code, payload in cmds:
                size = u.payload_size(code)
                out += struct.pack("<I", code) + (payload + bytes(size))[:size]
            try:
                app.send(out)
            except KernelError as e:
                assert e.errno in (EFAULT, EINVAL, 1, 2, 3, 12)
            # Drain what the commands produced (errors, completions) as a looper would.
            app.send(BinderClient.cmd(u.BC_ENTER_LOOPER))

        check()
        assert app.transact(h, 1).ok
