"""A Binder nop transaction under the explorer: a context manager's looper and a client
thread, every seam point of the driver a scheduling decision, hundreds of schedules."""

from __future__ import annotations

from binder.client import BinderClient, Parcel, Transaction
from binder.rust_binder_main import register
from ownership import sched
from ownership.bindings import Kernel
from ownership.explore import explore
from ownership.workqueue import flush
from tests.binder_harness import task_of, world

NOP = 1


def binder_nop() -> None:
    """A client calls the context manager (handle 0) once; the looper replies."""
    kernel = Kernel()
    reg = register(kernel)
    mgr_task = kernel.spawn_process("manager")
    app_task = kernel.spawn_process("app")
    mgr = BinderClient(mgr_task)
    mgr.become_context_manager()
    served: list[int] = []

    def handle(client: BinderClient, t: Transaction) -> Parcel:
        served.append(t.code)
        return Parcel().write_i32(0)

    mgr.add_object(0, handle)

    def looper() -> None:
        with mgr_task.as_current():
            mgr.loop(until=lambda: bool(served))

    lt = sched.active().spawn(looper, "manager-looper")
    app = BinderClient(app_task)
    with app_task.as_current():
        reply = app.transact(0, NOP, Parcel())
    assert reply.ok and served == [NOP]
    lt.join()
    app_task.exit()
    mgr_task.exit()
    flush()
    reg.unregister()


def test_binder_nop_transaction_is_clean() -> None:
    for strategy in ("random", "pct"):
        ex = explore(binder_nop, strategy=strategy, runs=100)
        assert ex.failure is None, ex.summary() + "\n" + str(ex.failure)
        assert ex.runs == 100


def harness_echo() -> None:
    """The end-to-end harness itself under the explorer: a service manager with its
    looper, an echo service registered with it and looked up by a client, one call;
    then every process exits and the harness checks nothing leaked."""
    with world() as w:

        def echo(client: BinderClient, t: Transaction) -> Parcel:
            return Parcel().write_i32(t.parcel.read_i32() + 1)

        w.service("echo", 0xE0, echo)
        app = w.spawn("app")
        with task_of(app).as_current():
            h = w.lookup(app, "echo")
            reply = app.transact(h, NOP, Parcel().write_i32(41))
        assert reply.ok and reply.parcel.read_i32() == 42


def test_the_binder_harness_runs_under_the_explorer() -> None:
    ex = explore(harness_echo, strategy="random", runs=30)
    assert ex.failure is None, ex.summary() + "\n" + str(ex.failure)
    assert ex.runs == 30
