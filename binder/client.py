"""A small userspace Binder library: `Parcel` and `BinderClient` (libbinder's role).

This is the *userspace* side of the model: it runs as a simulated task and talks to
`/dev/binder` only through the task's syscalls (`open`, `mmap`, `ioctl`, reading and
writing its own memory), with the real UAPI byte layouts of `binder.uapi`, as
libbinder's `IPCThreadState` and `ProcessState` do. Tests and the demo use it to
write driver-level scenarios that read like the AOSP binderLibTest.

* `Parcel`: a transaction payload: data bytes plus the offsets of the binder objects
  (binders, handles, fds, buffers) embedded in it.
* `Transaction`: an incoming `BR_TRANSACTION`/`BR_REPLY` with its data read back from
  the receive mapping (the buffer stays the receiver's until `free_buffer`).
* `BinderClient`: one process's connection: open + mmap, the command loop
  (`transact`, `reply`, `loop`, `free_buffer`), references (`acquire`, `release`),
  death notifications (`link_to_death`, `unlink_to_death`), and the ioctls
  (`set_max_threads`, `become_context_manager`, `freeze`, `frozen_info`, `version`).

Each Python thread using a client gets its own command and return buffers (as each
libbinder thread has its own `IPCThreadState`). The client is written against small
protocols of the simulated task and file, so it needs nothing from the kernel side.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ownership import sched
from ownership.errors import EINVAL, KernelError

from . import uapi as u

__all__ = [
    "BinderClient",
    "DeathRecipient",
    "Handler",
    "Parcel",
    "Reply",
    "Transaction",
    "TransactionFailed",
]

# The userspace constants of <sys/mman.h> (x86-64 Linux values).
PROT_READ = 0x1
PROT_WRITE = 0x2
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20

DEFAULT_MAP_SIZE = 1 << 20  # libbinder's BINDER_VM_SIZE is about 1 MiB.


class UserTask(Protocol):
    """What the client needs of a simulated task."""

    @property
    def pid(self) -> int: ...

    def open(self, name: str) -> UserFile: ...

    def mmap(self, file: Any, length: int, prot: int, flags: int = ...) -> int: ...

    def read_user(self, addr: int, n: int) -> bytes: ...

    def write_user(self, addr: int, data: bytes) -> None: ...


class UserFile(Protocol):
    """What the client needs of an open file: `ioctl` and `close`."""

    def ioctl(self, cmd: int, arg: object = ...) -> object: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------
# Parcel


def _pad4(n: int) -> int:
    return (n + 3) & ~3


class Parcel:
    """A transaction payload: `data` plus `offsets` of the objects inside it.

    Invariants: every offset points at a complete object in `data`, and offsets are
    increasing (the driver rejects anything else with `BR_FAILED_REPLY`, which tests
    provoke with `Parcel.raw`).
    """

    __slots__ = ("_pos", "buffers_size", "data", "offsets")

    def __init__(self, data: bytes = b"", offsets: list[int] | None = None) -> None:
        self.data = bytearray(data)
        self.offsets: list[int] = list(offsets or [])
        # Bytes of scatter-gather buffers (BINDER_TYPE_PTR) to reserve after the offsets.
        self.buffers_size = 0
        self._pos = 0

    @classmethod
    def raw(cls, data: bytes, offsets: list[int]) -> Parcel:
        """A parcel with arbitrary (possibly invalid) offsets, to test the driver."""
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Parcel({len(self.data)} bytes, {len(self.offsets)} objects)"

    # --- writing --------------------------------------------------------------

    def _put(self, fmt: str, *values: int) -> Parcel:
        self.data += struct.pack(fmt, *values)
        return self

    def write_i32(self, v: int) -> Parcel:
        return self._put("<i", v)

    def write_u32(self, v: int) -> Parcel:
        return self._put("<I", v)

    def write_i64(self, v: int) -> Parcel:
        return self._put("<q", v)

    def write_u64(self, v: int) -> Parcel:
        return self._put("<Q", v)

    def write_bytes(self, b: bytes) -> Parcel:
        """A length-prefixed byte string, padded to 4 bytes."""
        self.write_u32(len(b))
        self.data += b + bytes(_pad4(len(b)) - len(b))
        return self

    def write_str(self, s: str) -> Parcel:
        return self.write_bytes(s.encode())

    def _align_object(self) -> None:
        self.data += bytes(_pad4(len(self.data)) - len(self.data))

    def write_object(self, obj: u.BinderStruct) -> Parcel:
        """Embed a binder object and record its offset."""
        self._align_object()
        self.offsets.append(len(self.data))
        self.data += obj.pack()
        return self

    def write_strong_binder(self, ptr: int, cookie: int = 0, accept_fds: bool = True) -> Parcel:
        flags = 0x7F | (u.FLAT_BINDER_FLAG_ACCEPTS_FDS if accept_fds else 0)
        return self.write_object(u.flat_binder_object(u.BINDER_TYPE_BINDER, flags, ptr, cookie))

    def write_weak_binder(self, ptr: int, cookie: int = 0) -> Parcel:
        return self.write_object(u.flat_binder_object(u.BINDER_TYPE_WEAK_BINDER, 0x7F, ptr, cookie))

    def write_handle(self, handle: int, strong: bool = True) -> Parcel:
        kind = u.BINDER_TYPE_HANDLE if strong else u.BINDER_TYPE_WEAK_HANDLE
        return self.write_object(u.flat_binder_object(kind, 0x7F, handle, 0))

    def write_fd(self, fd: int, cookie: int = 0) -> Parcel:
        return self.write_object(u.binder_fd_object(u.BINDER_TYPE_FD, 0, fd, cookie))

    def write_buffer(
        self, addr: int, length: int, parent: int | None = None, parent_offset: int = 0
    ) -> int:
        """Embed a scatter-gather buffer (`BINDER_TYPE_PTR`) at user address `addr`.

        With `parent` (the object index of an earlier buffer), the driver also fixes
        up the pointer at `parent_offset` in the parent's copy. Returns this object's
        index, to name it as a parent. The transaction is sent as `BC_TRANSACTION_SG`.
        """
        flags = u.BINDER_BUFFER_FLAG_HAS_PARENT if parent is not None else 0
        index = len(self.offsets)
        self.write_object(
            u.binder_buffer_object(
                u.BINDER_TYPE_PTR, flags, addr, length, parent or 0, parent_offset
            )
        )
        self.buffers_size += (length + 7) & ~7
        return index

    def write_fd_array(self, num_fds: int, parent: int, parent_offset: int) -> Parcel:
        """Embed `num_fds` fds stored in buffer object `parent` at `parent_offset`."""
        return self.write_object(
            u.binder_fd_array_object(u.BINDER_TYPE_FDA, 0, num_fds, parent, parent_offset)
        )

    # --- reading ------------------------------------------------------------

    def rewind(self) -> None:
        self._pos = 0

    def _get(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self._pos + size > len(self.data):
            raise KernelError(
                EINVAL, f"parcel read past the end ({self._pos}+{size} > {len(self.data)})"
            )
        (v,) = struct.unpack_from(fmt, self.data, self._pos)
        self._pos += size
        return int(v)

    def read_i32(self) -> int:
        return self._get("<i")

    def read_u32(self) -> int:
        return self._get("<I")

    def read_i64(self) -> int:
        return self._get("<q")

    def read_u64(self) -> int:
        return self._get("<Q")

    def read_bytes(self) -> bytes:
        n = self.read_u32()
        if self._pos + n > len(self.data):
            raise KernelError(EINVAL, "parcel byte string past the end")
        b = bytes(self.data[self._pos : self._pos + n])
        self._pos += _pad4(n)
        return b

    def read_str(self) -> str:
        return self.read_bytes().decode()

    def read_object(self) -> u.flat_binder_object | u.binder_fd_object:
        """The next embedded object (it must be listed in `offsets`)."""
        self._pos = _pad4(self._pos)
        if self._pos not in self.offsets:
            raise KernelError(EINVAL, f"no object at parcel offset {self._pos}")
        type_ = struct.unpack_from("<I", self.data, self._pos)[0]
        cls: type[u.flat_binder_object] | type[u.binder_fd_object]
        cls = u.binder_fd_object if type_ == u.BINDER_TYPE_FD else u.flat_binder_object
        obj = cls.unpack(bytes(self.data[self._pos : self._pos + cls.SIZE]))
        self._pos += cls.SIZE
        return obj

    def objects(self) -> Iterator[u.flat_binder_object | u.binder_fd_object]:
        for off in self.offsets:
            type_ = struct.unpack_from("<I", self.data, off)[0]
            if type_ == u.BINDER_TYPE_FD:
                yield u.binder_fd_object.unpack(bytes(self.data[off : off + 24]))
            elif u.object_size(type_) == u.flat_binder_object.SIZE:
                yield u.flat_binder_object.unpack(bytes(self.data[off : off + 24]))


# ---------------------------------------------------------------------------
# Received transactions


@dataclass
class Transaction:
    """A `BR_TRANSACTION` or `BR_REPLY` as the receiving process sees it."""

    code: int
    flags: int
    sender_pid: int
    sender_euid: int
    target: int
    cookie: int
    buffer: int
    parcel: Parcel
    is_reply: bool

    @property
    def oneway(self) -> bool:
        return bool(self.flags & u.TF_ONE_WAY)


class TransactionFailed(Exception):
    """A two-way transaction ended with an error code instead of a reply."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(u.code_name(code))


@dataclass
class Reply:
    """The outcome of `transact`: the reply, or the error code that replaced it."""

    code: int
    transaction: Transaction | None = None

    @property
    def ok(self) -> bool:
        return self.code == u.BR_REPLY

    @property
    def parcel(self) -> Parcel:
        if self.transaction is None:
            raise TransactionFailed(self.code)
        return self.transaction.parcel

    @property
    def status(self) -> int:
        """0, or the status of a `TF_STATUS_CODE` reply."""
        t = self.transaction
        if t is None:
            raise TransactionFailed(self.code)
        if t.flags & u.TF_STATUS_CODE:
            t.parcel.rewind()
            return t.parcel.read_i32()
        return 0


Handler = Callable[["BinderClient", Transaction], "Parcel | int | None"]
"""A local object's code: returns the reply parcel, or an int status (`TF_STATUS_CODE`)."""
DeathRecipient = Callable[[int], None]


@dataclass
class _LocalObject:
    """A local binder object (a `BBinder`): its handler and the driver's counts."""

    handler: Handler
    strong: int = 0
    weak: int = 0


@dataclass
class _ThreadState:
    """One thread's `IPCThreadState`: its scratch memory in the task."""

    cmd_buf: int
    ret_buf: int
    wr_buf: int
    size: int
    pending_out: bytearray = field(default_factory=bytearray)


# ---------------------------------------------------------------------------
# The client


class BinderClient:
    """One process's binder connection (libbinder's `ProcessState` + `IPCThreadState`).

    Invariants: `base` is the receive mapping (read-only for the process);
    `objects` are the local binders this process exported, keyed by ptr; each
    Python thread uses its own scratch buffers.
    """

    def __init__(
        self,
        task: UserTask,
        *,
        device: str = "binder",
        map_size: int = DEFAULT_MAP_SIZE,
        scratch_size: int = 64 * 1024,
    ) -> None:
        self.task = task
        self.file = task.open(device)
        self.map_size = map_size
        self.base = task.mmap(self.file, map_size, PROT_READ, MAP_PRIVATE)
        self.scratch_size = scratch_size
        self.objects: dict[int, _LocalObject] = {}
        self.deaths: dict[int, DeathRecipient] = {}
        self.events: list[tuple[int, int]] = []
        # Called on BR_SPAWN_LOOPER (libbinder's `spawnPooledThread`); None: ignore it.
        self.on_spawn_looper: Callable[[], object] | None = None
        # Per-thread scratch state, keyed by the seam's thread id (a model thread under
        # the explorer); the lock is a seam lock, as it is held across `task.mmap`.
        self._tls: dict[int, _ThreadState] = {}
        self._lock = sched.active().raw_lock()
        self._stop = threading.Event()
        self.closed = False

    @property
    def pid(self) -> int:
        return self.task.pid

    # --- scratch memory and raw ioctls -----------------------------------------------

    def _ts(self) -> _ThreadState:
        tid = sched.current_id()
        ts = self._tls.get(tid)
        if ts is None:
            size = self.scratch_size
            self._lock.acquire()
            try:
                base = self.task.mmap(
                    None, 3 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
                )
            finally:
                self._lock.release()
            ts = _ThreadState(base, base + size, base + 2 * size, size)
            self._tls[tid] = ts
        return ts

    def ioctl_struct(self, cmd: int, value: u.BinderStruct | None = None) -> bytes:
        """Run an ioctl whose argument is a struct in this thread's scratch memory."""
        ts = self._ts()
        size = u.ioc_size(cmd)
        if value is not None:
            self.task.write_user(ts.wr_buf, value.pack())
        self.file.ioctl(cmd, ts.wr_buf)
        return self.task.read_user(ts.wr_buf, size) if size else b""

    def write_read(self, out: bytes, read: bool = True) -> tuple[int, bytes]:
        """One BINDER_WRITE_READ: returns (bytes of `out` consumed, bytes read back)."""
        ts = self._ts()
        if len(out) > ts.size:
            raise KernelError(EINVAL, "command buffer too large for the scratch area")
        if out:
            self.task.write_user(ts.cmd_buf, out)
        bwr = u.binder_write_read(len(out), 0, ts.cmd_buf, ts.size if read else 0, 0, ts.ret_buf)
        raw = self.ioctl_struct(u.BINDER_WRITE_READ, bwr)
        res = u.binder_write_read.unpack(raw)
        data = self.task.read_user(ts.ret_buf, res.read_consumed) if res.read_consumed else b""
        return res.write_consumed, data

    def send(self, *commands: bytes) -> int:
        """Write commands without reading; returns the bytes consumed."""
        consumed, _ = self.write_read(b"".join(commands), read=False)
        return consumed

    # --- commands -------------------------------------------------------------------

    @staticmethod
    def cmd(code: int, payload: bytes = b"") -> bytes:
        if len(payload) != u.payload_size(code):
            raise KernelError(EINVAL, f"{u.code_name(code)} takes {u.payload_size(code)} bytes")
        return code.to_bytes(4, "little") + payload

    @staticmethod
    def parse_returns(data: bytes) -> list[tuple[int, bytes]]:
        """Split a read buffer into `(BR_* code, payload)` pairs."""
        out: list[tuple[int, bytes]] = []
        pos = 0
        while pos + 4 <= len(data):
            code = int.from_bytes(data[pos : pos + 4], "little")
            size = u.payload_size(code)
            out.append((code, data[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        return out

    def _transaction_cmd(
        self, code_cmd: int, handle: int, code: int, parcel: Parcel, flags: int
    ) -> bytes:
        ts = self._ts()
        data = bytes(parcel.data)
        offs = b"".join(o.to_bytes(8, "little") for o in parcel.offsets)
        if 256 + len(data) + len(offs) + 16 > ts.size:
            big = self.task.mmap(
                None,
                len(data) + len(offs) + 16,
                PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS,
            )
            data_addr, offs_addr = big, big + ((len(data) + 7) & ~7)
        else:
            # The payload goes after the ioctl argument in this thread's scratch area.
            data_addr = ts.wr_buf + 256
            offs_addr = data_addr + ((len(data) + 7) & ~7)
        if data:
            self.task.write_user(data_addr, data)
        if offs:
            self.task.write_user(offs_addr, offs)
        fields = (handle, 0, code, flags, 0, 0, len(data), len(offs), data_addr, offs_addr)
        if parcel.buffers_size:
            sg = u.binder_transaction_data_sg(*fields, parcel.buffers_size)
            sg_cmd = u.BC_REPLY_SG if code_cmd == u.BC_REPLY else u.BC_TRANSACTION_SG
            return self.cmd(sg_cmd, sg.pack())
        return self.cmd(code_cmd, u.binder_transaction_data(*fields).pack())

    def user_buffer(self, data: bytes) -> int:
        """Put `data` in fresh memory of this process; its address, for `write_buffer`."""
        addr = self.task.mmap(
            None, max(len(data), 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS
        )
        if data:
            self.task.write_user(addr, data)
        return addr

    def _read_transaction(self, code: int, payload: bytes) -> Transaction:
        tr = u.binder_transaction_data.unpack(payload)
        data = self.task.read_user(tr.buffer, tr.data_size) if tr.data_size else b""
        offs: list[int] = []
        if tr.offsets_size:
            raw = self.task.read_user(tr.offsets, tr.offsets_size)
            offs = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
        return Transaction(
            tr.code,
            tr.flags,
            tr.sender_pid,
            tr.sender_euid,
            tr.target,
            tr.cookie,
            tr.buffer,
            Parcel(data, offs),
            code == u.BR_REPLY,
        )

    # --- the command loop ------------------------------------------------------------

    def _handle_return(self, code: int, payload: bytes, out: bytearray) -> Transaction | None:
        """React to one return code; an incoming transaction is returned to the caller."""
        self.events.append((code, len(payload)))
        if code in (u.BR_TRANSACTION, u.BR_REPLY):
            return self._read_transaction(code, payload)
        if code in (u.BR_INCREFS, u.BR_ACQUIRE, u.BR_RELEASE, u.BR_DECREFS):
            pc = u.binder_ptr_cookie.unpack(payload)
            obj = self.objects.get(pc.ptr)
            if code == u.BR_INCREFS:
                if obj is not None:
                    obj.weak += 1
                out += self.cmd(u.BC_INCREFS_DONE, payload)
            elif code == u.BR_ACQUIRE:
                if obj is not None:
                    obj.strong += 1
                out += self.cmd(u.BC_ACQUIRE_DONE, payload)
            elif code == u.BR_RELEASE and obj is not None:
                obj.strong -= 1
            elif code == u.BR_DECREFS and obj is not None:
                obj.weak -= 1
        elif code == u.BR_SPAWN_LOOPER:
            if self.on_spawn_looper is not None:
                self.on_spawn_looper()
        elif code == u.BR_DEAD_BINDER:
            cookie = int.from_bytes(payload, "little")
            cb = self.deaths.get(cookie)
            if cb is not None:
                cb(cookie)
            out += self.cmd(u.BC_DEAD_BINDER_DONE, payload)
        return None

    def _serve(self, t: Transaction, out: bytearray) -> None:
        """Run the local object's handler for an incoming transaction and answer it."""
        obj = self.objects.get(t.target)
        reply = obj.handler(self, t) if obj is not None else Parcel()
        free = self.cmd(u.BC_FREE_BUFFER, t.buffer.to_bytes(8, "little"))
        if t.oneway:
            out += free
            return
        flags = 0
        if isinstance(reply, int):
            # An error status travels as a 4-byte reply flagged TF_STATUS_CODE.
            reply, flags = Parcel().write_i32(reply), u.TF_STATUS_CODE
        # libbinder frees the request buffer in the same write as the reply.
        out += free + self._transaction_cmd(
            u.BC_REPLY, 0, 0, reply if reply is not None else Parcel(), flags
        )

    def transact(
        self,
        handle: int,
        code: int,
        parcel: Parcel | None = None,
        flags: int = 0,
        *,
        keep_buffer: bool = False,
    ) -> Reply:
        """Send a transaction; for a two-way one, wait for the reply (serving callbacks).

        Unless `keep_buffer`, the reply's buffer is freed once its data was read, after
        taking a reference on every strong handle in it (as libbinder's `BpBinder` does),
        so the caller keeps using those handles.
        """
        reply = self._transact(handle, code, parcel, flags)
        t = reply.transaction
        if t is not None and not keep_buffer:
            for obj in t.parcel.objects():
                if isinstance(obj, u.flat_binder_object) and obj.type == u.BINDER_TYPE_HANDLE:
                    self.acquire(obj.handle)
            self.free_buffer(t.buffer)
        return reply

    def _transact(self, handle: int, code: int, parcel: Parcel | None, flags: int) -> Reply:
        # As libbinder, every call accepts file descriptors in its reply.
        flags |= u.TF_ACCEPT_FDS
        out = bytearray(
            self._transaction_cmd(u.BC_TRANSACTION, handle, code, parcel or Parcel(), flags)
        )
        oneway = bool(flags & u.TF_ONE_WAY)
        while True:
            _, data = self.write_read(bytes(out))
            out = bytearray()
            for code_r, payload in self.parse_returns(data):
                t = self._handle_return(code_r, payload, out)
                if code_r == u.BR_TRANSACTION_COMPLETE and oneway:
                    if out:
                        self.send(bytes(out))
                    return Reply(code_r)
                if code_r in (
                    u.BR_DEAD_REPLY,
                    u.BR_FAILED_REPLY,
                    u.BR_FROZEN_REPLY,
                    u.BR_TRANSACTION_PENDING_FROZEN,
                ):
                    if out:
                        self.send(bytes(out))
                    return Reply(code_r)
                if t is not None and t.is_reply:
                    if out:
                        self.send(bytes(out))
                    return Reply(u.BR_REPLY, t)
                if t is not None:
                    # A nested incoming call (a callback) while we wait for our reply.
                    self._serve(t, out)

    def reply(self, parcel: Parcel, incoming: Transaction, *, free: bool = True) -> None:
        """Reply to `incoming` (freeing its buffer first), for code that serves by hand."""
        out = bytearray(
            self.cmd(u.BC_FREE_BUFFER, incoming.buffer.to_bytes(8, "little")) if free else b""
        )
        out += self._transaction_cmd(u.BC_REPLY, 0, 0, parcel, 0)
        self.send(bytes(out))

    def next_transaction(self) -> Transaction:
        """Block until an incoming transaction arrives, reading as a looper (manual serving)."""
        while True:
            out = bytearray()
            _, data = self.write_read(self.cmd(u.BC_ENTER_LOOPER))
            for code_r, payload in self.parse_returns(data):
                t = self._handle_return(code_r, payload, out)
                if out:
                    self.send(bytes(out))
                    out = bytearray()
                if t is not None:
                    return t

    def free_buffer(self, buffer: int) -> None:
        self.send(self.cmd(u.BC_FREE_BUFFER, buffer.to_bytes(8, "little")))

    def read_returns(self) -> list[tuple[int, bytes]]:
        """One blocking read of the return stream (for tests that drive it by hand)."""
        _, data = self.write_read(b"")
        return self.parse_returns(data)

    def poll_once(self) -> list[tuple[int, bytes]]:
        """One blocking read as a looper (process work included): handle refcount
        requests and death notifications, serve incoming calls."""
        out = bytearray(self.cmd(u.BC_ENTER_LOOPER))
        _, data = self.write_read(bytes(out))
        out = bytearray()
        returns = self.parse_returns(data)
        for code_r, payload in returns:
            t = self._handle_return(code_r, payload, out)
            if t is not None and not t.is_reply:
                self._serve(t, out)
        if out:
            self.send(bytes(out))
        return returns

    def loop(self, *, register: bool = False, until: Callable[[], bool] | None = None) -> None:
        """The looper: `BC_ENTER_LOOPER` (or `BC_REGISTER_LOOPER`), then serve until stopped."""
        first = self.cmd(u.BC_REGISTER_LOOPER if register else u.BC_ENTER_LOOPER)
        self.send(first)
        try:
            while not self._stop.is_set() and not (until is not None and until()):
                try:
                    self._loop_once()
                except KernelError:
                    # The process died (or closed the device) under the looper.
                    if self._stop.is_set() or self.closed or getattr(self.task, "exited", False):
                        return
                    raise
        finally:
            if not self.closed and not getattr(self.task, "exited", False):
                try:
                    self.send(self.cmd(u.BC_EXIT_LOOPER))
                except KernelError:
                    # The process died under us: nothing left to tell the driver.
                    pass

    def _loop_once(self) -> None:
        out = bytearray()
        _, data = self.write_read(b"")
        for code_r, payload in self.parse_returns(data):
            t = self._handle_return(code_r, payload, out)
            if t is not None and not t.is_reply:
                self._serve(t, out)
        if out:
            self.send(bytes(out))

    def stop(self) -> None:
        """Ask `loop()` to return at its next wakeup."""
        self._stop.set()

    # --- objects, references, deaths -------------------------------------------------------

    def add_object(self, ptr: int, handler: Handler) -> int:
        """Export a local binder (`BBinder`) at `ptr`; send it with `write_strong_binder`."""
        self.objects[ptr] = _LocalObject(handler)
        return ptr

    def acquire(self, handle: int) -> None:
        self.send(
            self.cmd(u.BC_INCREFS, handle.to_bytes(4, "little")),
            self.cmd(u.BC_ACQUIRE, handle.to_bytes(4, "little")),
        )

    def release(self, handle: int) -> None:
        self.send(
            self.cmd(u.BC_RELEASE, handle.to_bytes(4, "little")),
            self.cmd(u.BC_DECREFS, handle.to_bytes(4, "little")),
        )

    def link_to_death(self, handle: int, cookie: int, recipient: DeathRecipient) -> None:
        self.deaths[cookie] = recipient
        self.send(
            self.cmd(u.BC_REQUEST_DEATH_NOTIFICATION, u.binder_handle_cookie(handle, cookie).pack())
        )

    def unlink_to_death(self, handle: int, cookie: int) -> None:
        self.send(
            self.cmd(u.BC_CLEAR_DEATH_NOTIFICATION, u.binder_handle_cookie(handle, cookie).pack())
        )

    # --- ioctls --------------------------------------------------------------------------

    def version(self) -> int:
        return u.binder_version.unpack(self.ioctl_struct(u.BINDER_VERSION)).protocol_version

    def set_max_threads(self, n: int) -> None:
        ts = self._ts()
        self.task.write_user(ts.wr_buf, n.to_bytes(4, "little"))
        self.file.ioctl(u.BINDER_SET_MAX_THREADS, ts.wr_buf)

    def become_context_manager(self) -> None:
        self.file.ioctl(u.BINDER_SET_CONTEXT_MGR, 0)

    def thread_exit(self) -> None:
        ts = self._ts()
        self.file.ioctl(u.BINDER_THREAD_EXIT, ts.wr_buf)

    def freeze(self, pid: int, enable: bool, timeout_ms: int = 0) -> None:
        self.ioctl_struct(u.BINDER_FREEZE, u.binder_freeze_info(pid, int(enable), timeout_ms))

    def frozen_info(self, pid: int) -> u.binder_frozen_status_info:
        raw = self.ioctl_struct(u.BINDER_GET_FROZEN_INFO, u.binder_frozen_status_info(pid))
        return u.binder_frozen_status_info.unpack(raw)

    def extended_error(self) -> u.binder_extended_error:
        return u.binder_extended_error.unpack(self.ioctl_struct(u.BINDER_GET_EXTENDED_ERROR))

    def close(self) -> None:
        """Close the binder fd (the driver defers the process's release to a workqueue)."""
        if not self.closed:
            self.closed = True
            self._stop.set()
            self.file.close()
