"""`python -m binder demo`: a service manager, an echo service and a client, talking.

Three simulated processes open `/dev/binder`: the service manager becomes the context
manager; the echo service registers a binder under "echo"; the client looks it up,
sends messages (two-way and oneway), links to the service's death, and watches the
service die. Every step goes through the real UAPI, with the runtime checks on, so the
run doubles as a smoke test: it ends by comparing the machine's pages in use before
the processes started and after they all exited, to show that nothing leaked.

This is userspace code (like the AOSP binderLibTest server) over `binder.client`; the
simulated kernel is passed in by the caller (`binder.__main__`), since `binder` never
imports the simulated C side itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ownership import sched
from ownership.sched import ThreadHandle
from ownership.workqueue import flush

from . import uapi as u
from .client import BinderClient, Parcel, Transaction
from .servicemanager import ServiceManager, add_service, get_service

__all__ = ["ECHO", "PING", "EchoService", "run_demo", "start_looper"]

PING = 1
ECHO = 2
ECHO_PTR = 0xE0E0_1000


class EchoService:
    """Replies with what it was sent; counts oneway messages."""

    def __init__(self) -> None:
        self.oneway_seen: list[str] = []
        self.lock = threading.Lock()

    def handle(self, client: BinderClient, t: Transaction) -> Parcel:
        p = t.parcel
        p.rewind()
        if t.code == ECHO:
            msg = p.read_str()
            if t.oneway:
                with self.lock:
                    self.oneway_seen.append(msg)
                return Parcel()
            return Parcel().write_str(msg)
        return Parcel().write_i32(0)


def start_looper(client: BinderClient, name: str) -> ThreadHandle:
    """Run `client.loop()` on a new userspace thread of the client's process (through
    the scheduling seam: an OS thread by default, a model thread under the explorer)."""
    return sched.active().spawn(client.loop, name)


def run_demo(
    kernel: Any, register: Callable[[Any], object], out: Callable[[str], None] = print
) -> int:
    """Run the demo in `kernel` (with binder registered by `register`); 0 on success."""
    register(kernel)
    pages_before = kernel.nr_used_pages()
    sm_task = kernel.spawn_process("servicemanager")
    echo_task = kernel.spawn_process("echo_service")
    app_task = kernel.spawn_process("client_app")

    sm = BinderClient(sm_task)
    manager = ServiceManager(sm)
    sm_thread = start_looper(sm, "servicemanager-looper")
    out(f"servicemanager (pid {sm_task.pid}) is the context manager; protocol {sm.version()}")

    echo = BinderClient(echo_task)
    service = EchoService()
    echo.add_object(ECHO_PTR, service.handle)
    echo_thread = start_looper(echo, "echo-looper")
    status = add_service(echo, "echo", ECHO_PTR)
    out(f"echo_service (pid {echo_task.pid}) registered 'echo': status {status}")

    app = BinderClient(app_task)
    handle = get_service(app, "echo")
    if handle is None:
        out("client_app: 'echo' not found")
        return 1
    out(f"client_app (pid {app_task.pid}) got 'echo' as handle {handle}")

    ok = True
    for msg in ("hello, binder", "the driver is a Python model", "with every check on"):
        reply = app.transact(handle, ECHO, Parcel().write_str(msg))
        back = reply.parcel.read_str() if reply.ok else u.code_name(reply.code)
        ok &= back == msg
        out(f"  -> {msg!r}  <- {back!r}")
    for i in range(3):
        r = app.transact(handle, ECHO, Parcel().write_str(f"oneway #{i}"), u.TF_ONE_WAY)
        ok &= r.code == u.BR_TRANSACTION_COMPLETE
    # A two-way call after the oneway ones: oneway work on a node is delivered in order.
    app.transact(handle, PING)
    out(f"  oneway messages seen by the service, in order: {service.oneway_seen}")

    died = threading.Event()
    app.link_to_death(handle, 0xDEAD, lambda cookie: died.set())
    out("client_app linked to the death of 'echo'; killing echo_service")
    echo_task.exit()
    flush()
    # The client hears about the death when it next reads.
    while not died.is_set():
        app.poll_once()
    out("client_app: BR_DEAD_BINDER for 'echo' received")
    dead = app.transact(handle, PING)
    out(f"client_app: a call to the dead service ends with {u.code_name(dead.code)}")
    ok &= dead.code == u.BR_DEAD_REPLY
    app.unlink_to_death(handle, 0xDEAD)
    app.release(handle)
    echo_thread.join(5)

    app_task.exit()
    sm_task.exit()
    flush()
    sm_thread.join(5)
    out(f"services the manager still names: {sorted(manager.services)}")
    pages_after = kernel.nr_used_pages()
    out(f"pages in use: {pages_before} before the processes, {pages_after} after they exited")
    ok &= pages_after == pages_before
    out("done: " + ("all messages echoed, nothing leaked" if ok else "MISMATCH"))
    return 0 if ok else 1
