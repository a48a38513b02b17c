"""`mm_users`/`mm_count` under any sequence of references (hypothesis state machine).

Drivers hold `ARef[Mm]` (mmgrab), `ARef[MmWithUser]` (mmget) and
`ARef[MmWithUserAsync]` (mmget, dropped with mmput_async) in any order while the process
runs and exits. The counts must match the references held; the address space must exist
exactly while `mm_users > 0`; `mmget_not_zero` must fail exactly when it is 0; the struct
is freed exactly when the last `mmgrab` goes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ownership import workqueue
from ownership.aref import ARef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Kernel
from ownership.errors import RefcountError
from ownership.mm import Mm, MmWithUser, MmWithUserAsync
from ownership.task import current
from tests.expect import assert_splat


class MmRefs(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = Kernel(pages_per_node=256)
        self.proc = self.kernel.spawn_process("refs")
        with self.proc.as_current():
            self.proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            mm = current().mm()
            assert mm is not None
            self.raw = mm.as_raw()
            self.view = mm.as_mm()  # A reference without a count: checked on every use.
            self.grabs: list[ARef[Mm]] = [ARef.from_ref(mm.as_mm())]
        self.users: list[ARef[MmWithUser]] = []
        self.asyncs: list[ARef[MmWithUserAsync]] = []
        self.alive = True

    def _nr_users(self) -> int:
        return len(self.users) + len(self.asyncs) + (1 if self.alive else 0)

    @precondition(lambda self: bool(self.grabs))
    @rule()
    def grab(self) -> None:
        self.grabs.append(self.grabs[0].clone())

    @precondition(lambda self: len(self.grabs) > 1 or (self.grabs and not self._nr_users()))
    @rule(data=st.data())
    def drop_grab(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.grabs) - 1))
        self.grabs.pop(i).drop()

    @precondition(lambda self: bool(self.grabs))
    @rule()
    def mmget_not_zero(self) -> None:
        got = self.grabs[-1].get().mmget_not_zero()
        assert (got is None) == (self._nr_users() == 0)
        if got is not None:
            self.users.append(got)

    @precondition(lambda self: bool(self.users))
    @rule(data=st.data(), to_async=st.booleans())
    def drop_user(self, data: st.DataObject, to_async: bool) -> None:
        user = self.users.pop(data.draw(st.integers(0, len(self.users) - 1)))
        if to_async:
            self.asyncs.append(MmWithUser.into_mmput_async(user))
        else:
            user.drop()

    @precondition(lambda self: bool(self.asyncs))
    @rule()
    def drop_async(self) -> None:
        self.asyncs.pop().drop()
        workqueue.flush()

    @precondition(lambda self: self.alive)
    @rule()
    def exit(self) -> None:
        self.proc.exit()
        self.alive = False

    @rule()
    def use_the_uncounted_view(self) -> None:
        if self.raw.freed:
            with pytest.raises(RefcountError) as e:
                self.view.mmget_not_zero()
            assert_splat(e, "mm-use-after-free", cls=RefcountError)
        elif self.grabs:
            got = self.view.mmget_not_zero()
            assert (got is None) == (self._nr_users() == 0)
            if got is not None:
                got.drop()

    @invariant()
    def counts_match_the_references(self) -> None:
        workqueue.flush()
        users = self._nr_users()
        grabs = len(self.grabs)
        assert self.raw.mm_users.read() == users
        assert self.raw.mm_count.read() == grabs + (1 if users else 0)
        assert self.raw.freed == (grabs == 0 and users == 0)
        assert bool(self.raw.vmas) == (users > 0)

    def teardown(self) -> None:
        for a in self.asyncs:
            a.drop()
        for u in self.users:
            u.drop()
        if self.alive:
            self.proc.exit()
        for g in self.grabs:
            g.drop()
        workqueue.flush()
        assert self.raw.freed
        assert not self.kernel.leaks()


MmRefs.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMmRefs = MmRefs.TestCase
