"""A userspace service manager and the helpers that talk to it (AOSP servicemanager).

The context manager is an ordinary userspace process that made itself handle 0 with
`BINDER_SET_CONTEXT_MGR`. Services register a binder under a name (`ADD_SERVICE`, the
binder travels in the parcel and becomes a handle in the manager), clients look a name
up (`GET_SERVICE`, the manager's handle travels back and becomes a handle in the
client). That round trip exercises the whole object translation path of the driver,
which is why the demo, the benchmark and the AOSP test ports all start with it.

This is userspace code built on `binder.client`; it is split from the client library
because it is an application of it, as servicemanager is of libbinder.
"""

from __future__ import annotations

from ownership import sched

from . import uapi as u
from .client import BinderClient, Parcel, Transaction

__all__ = [
    "ADD_SERVICE",
    "CHECK_SERVICE",
    "GET_SERVICE",
    "LIST_SERVICES",
    "NAME_NOT_FOUND",
    "ServiceManager",
    "add_service",
    "get_service",
]

GET_SERVICE = 1
CHECK_SERVICE = 2
ADD_SERVICE = 3
LIST_SERVICES = 4
NAME_NOT_FOUND = -2
OK = 0


class ServiceManager:
    """The name -> handle registry served from the context manager's node (ptr 0).

    Invariants: every handle in `services` holds a strong and a weak reference taken
    with `BC_ACQUIRE`/`BC_INCREFS` before the request buffer was freed, once per name, and
    has a death notification (cookie = the handle) while any name maps to it.
    """

    def __init__(self, client: BinderClient) -> None:
        self.client = client
        self.services: dict[str, int] = {}
        self._linked: set[int] = set()
        # A userspace mutex, taken through the scheduling seam so that the explorer
        # orders the service manager's threads too.
        self._lock = sched.active().raw_lock()
        client.become_context_manager()
        client.add_object(0, self.handle)

    def handle(self, client: BinderClient, t: Transaction) -> Parcel:
        p = t.parcel
        p.rewind()
        if t.code == ADD_SERVICE:
            name = p.read_str()
            obj = p.read_object()
            if not isinstance(obj, u.flat_binder_object) or obj.type != u.BINDER_TYPE_HANDLE:
                return Parcel().write_i32(-22)
            # Keep the service alive: take our own counts before the buffer is freed.
            client.acquire(obj.handle)
            with self._lock:
                old = self.services.get(name)
                self.services[name] = obj.handle
                link = obj.handle not in self._linked
                self._linked.add(obj.handle)
            if link:
                # As AOSP servicemanager does, forget a service when its process dies.
                client.link_to_death(obj.handle, obj.handle, self._service_died)
            if old is not None:
                self._forget(old, unlink=old != obj.handle)
            return Parcel().write_i32(OK)
        if t.code in (GET_SERVICE, CHECK_SERVICE):
            name = p.read_str()
            with self._lock:
                handle = self.services.get(name)
            if handle is None:
                return Parcel().write_i32(NAME_NOT_FOUND)
            return Parcel().write_i32(OK).write_handle(handle)
        if t.code == LIST_SERVICES:
            with self._lock:
                names = sorted(self.services)
            out = Parcel().write_i32(OK).write_u32(len(names))
            for n in names:
                out.write_str(n)
            return out
        return Parcel().write_i32(-38)  # UNKNOWN_TRANSACTION (-ENOSYS)

    def _forget(self, handle: int, *, unlink: bool) -> None:
        """Give back one name's counts on `handle`; unlink its death when no name is left."""
        with self._lock:
            last = handle not in self.services.values()
            if last and unlink:
                self._linked.discard(handle)
        if last and unlink:
            self.client.unlink_to_death(handle, handle)
        self.client.release(handle)

    def _service_died(self, cookie: int) -> None:
        """`BR_DEAD_BINDER` for a service (cookie = its handle): drop every name of it."""
        with self._lock:
            names = [n for n, h in self.services.items() if h == cookie]
            for n in names:
                del self.services[n]
            self._linked.discard(cookie)
        # libbinder's sendObituary clears the notification before BC_DEAD_BINDER_DONE.
        self.client.unlink_to_death(cookie, cookie)
        for _ in names:
            self.client.release(cookie)


def add_service(client: BinderClient, name: str, ptr: int, cookie: int = 0) -> int:
    """Register the local binder `ptr` under `name`; returns the manager's status."""
    reply = client.transact(
        0, ADD_SERVICE, Parcel().write_str(name).write_strong_binder(ptr, cookie)
    )
    if not reply.ok:
        return -1
    return reply.parcel.read_i32()


def get_service(client: BinderClient, name: str) -> int | None:
    """The handle of service `name` in this process (referenced), or None."""
    reply = client.transact(0, GET_SERVICE, Parcel().write_str(name))
    if not reply.ok:
        return None
    p = reply.parcel
    if p.read_i32() != OK:
        return None
    obj = p.read_object()
    if not isinstance(obj, u.flat_binder_object):
        return None
    return obj.handle
