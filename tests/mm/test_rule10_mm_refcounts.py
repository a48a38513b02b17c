"""Rule 10: `mmget_not_zero` returns None once `mm_users` is 0; an `Mm` used after its
last `mmdrop` is a `RefcountError` (and an `MmWithUser` after its last `mmput`)."""

from __future__ import annotations

import pytest

from ownership.aref import ARef
from ownership.bindings import MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, Task
from ownership.errors import RefcountError, UnsafeError
from ownership.mm import Mm, MmWithUser
from ownership.unsafe import unsafe
from tests.expect import assert_splat

from .helpers import current_mm


def test_mmget_not_zero_after_exit_returns_none(proc: Task) -> None:
    grab = ARef.from_ref(current_mm().as_mm())
    proc.exit()
    assert grab.get().mmget_not_zero() is None
    grab.drop()


def test_mm_used_after_the_last_mmdrop(proc: Task) -> None:
    grab = ARef.from_ref(current_mm().as_mm())
    mm = grab.get()
    proc.exit()
    grab.drop()
    with pytest.raises(RefcountError) as e:
        mm.mmget_not_zero()
    assert_splat(e, "mm-use-after-free", site="mm.mmget_not_zero()", origin="grab.drop()")
    with pytest.raises(RefcountError):
        ARef.from_ref(mm)


def test_mm_with_user_used_after_the_last_mmput(proc: Task) -> None:
    grab = ARef.from_ref(current_mm().as_mm())
    user = ARef.from_ref(current_mm())
    view = user.get()
    proc.exit()
    user.drop()
    with pytest.raises(RefcountError) as e:
        view.mmap_read_lock()
    assert_splat(e, "mm-users-zero", site="view.mmap_read_lock()", origin="user.drop()")
    grab.drop()


def test_from_raw_checks_what_it_can(proc: Task) -> None:
    raw = current_mm().as_raw()
    grab = ARef.from_ref(current_mm().as_mm())
    proc.exit()
    with unsafe(
        "SAFETY: the mm_struct is kept allocated by `grab` (wrong on purpose for MmWithUser: "
        "mm_users is zero after the exit)."
    ):
        assert Mm.from_raw(raw) is grab.get()
        with pytest.raises(UnsafeError) as e:
            MmWithUser.from_raw(raw)
    assert_splat(e, "mm-from-raw-invalid", site="MmWithUser.from_raw(raw)", origin="proc.exit()")
    grab.drop()


def test_clean_references_keep_the_address_space(proc: Task) -> None:
    addr = proc.mmap(None, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    proc.write_user(addr, b"kept")
    grab = ARef.from_ref(current_mm().as_mm())
    user = grab.get().mmget_not_zero()
    assert user is not None
    raw = grab.get().as_raw()
    assert (raw.mm_users.read(), raw.mm_count.read()) == (2, 2)
    proc.exit()
    with user.get().mmap_read_lock() as guard:
        vma = guard.vma_lookup(addr)
        assert vma is not None and vma.mm() == user.get()
    user.drop()
    assert raw.mm_users.read() == 0 and not raw.vmas, "the last mmput tore the address space down"
    assert not raw.freed
    grab.drop()
    assert raw.freed
