"""The catalogue of rule ids: what each models, which error reports it, and the fix.

Every `SafetyViolation` carries a stable `.rule` id. This module lists every id the
runtime can raise, once, with the Rust, Miri or kernel mechanism it stands in for, so
that a reviewer can read the whole rule set in one place (`python -m ownership rules`
prints it; the README's table is that output). The VMA flag rules are not restated:
they are read from `ownership.mm.vma_rules.RULES`. A test checks that every
`rule="..."` raised anywhere in `ownership/` or `binder/` is listed here.

Each entry's `fix` is the correct pattern, in one line: the last line of every report
of that rule (`SafetyViolation.fix`). Importing this module installs the lookup in
`ownership.errors`. `ownership.marker` (which every Rust-side type uses) imports it, so a
report has its hint whenever the Rust side is loaded; the simulated C side alone, which
must not load the Rust side, reports without one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

from .errors import (
    AtomicSleepError,
    BorrowError,
    KernelBug,
    LifetimeError,
    LockError,
    PinError,
    RefcountError,
    SafetyViolation,
    SendError,
    SyncError,
    UnsafeError,
    VmaFlagError,
    install_fix_hints,
)
from .include.vma_rules import RULES as VMA_RULES

__all__ = ["RULES", "Rule", "all_rules", "fix_for", "main"]


@dataclass(frozen=True)
class Rule:
    """One rule id, the mechanism it models and the error class that reports it."""

    id: str
    error: type[Exception]
    models: str
    summary: str
    fix: str


def _r(id_: str, error: type[Exception], models: str, summary: str, fix: str) -> Rule:
    return Rule(id_, error, models, summary, fix)


RULES: tuple[Rule, ...] = (
    # Execution context.
    _r(
        "atomic-sleep",
        AtomicSleepError,
        "CONFIG_DEBUG_ATOMIC_SLEEP (`__might_resched`), klint",
        "a may-sleep call (Mutex.lock, GFP_KERNEL, mmap_read_lock, mmput, ...) in atomic context",
        "drop the spinlock (end the RCU/preempt/IRQ section) before the call, or use GFP_ATOMIC",
    ),
    _r(
        "unbalanced-atomic",
        LockError,
        "preempt_count underflow warning",
        "closing an atomic section this thread did not open",
        "close each atomic section on the thread that opened it, innermost first",
    ),
    _r(
        "return-to-user-leak",
        LockError,
        'lockdep_sys_exit: "lock held when returning to user space!"',
        "a file operation returns to userspace holding a lock, atomic or inside RCU",
        "release every lock and end every atomic or RCU section before the file operation returns",
    ),
    _r(
        "workqueue-leak",
        LockError,
        'process_one_work: "workqueue leaked atomic, lock or RCU"',
        "a work item returns holding a lock, with preemption disabled or inside RCU",
        "release every lock and end every atomic or RCU section before the work item returns",
    ),
    # Locks.
    _r(
        "lock",
        LockError,
        "lockdep",
        "a locking bug",
        "take and release each lock once, on one thread, in the recorded order",
    ),
    _r(
        "lock-order",
        LockError,
        "lockdep: possible circular locking dependency",
        "an AB-BA lock order, reported the first time the inverted order is attempted",
        "take the locks in the recorded order (the first path's), or drop the outer lock first",
    ),
    _r(
        "recursive-lock",
        LockError,
        "lockdep: possible recursive locking",
        "taking a lock (or a lock of the same class, without nesting) already held",
        "do not retake a held lock; for two locks of one class in a set order, pass nested=1",
    ),
    _r(
        "double-unlock",
        LockError,
        "lockdep: bad unlock balance; Rust's move of the guard",
        "releasing a guard twice",
        "release each guard once (drop() or the end of its `with`, not both)",
    ),
    _r(
        "unlock-not-held",
        LockError,
        "lockdep: releasing a lock that is not held",
        "a lockdep release with no matching acquisition on this thread",
        "release only locks this thread took, through the guard that took them",
    ),
    _r(
        "locked-by-owner",
        LockError,
        "`LockedBy::access` asserting `ptr::eq` of the owner",
        "LockedBy data reached with a guard of another lock",
        "reach LockedBy data with a guard of the lock that owns it",
    ),
    _r(
        "rwsem-owner",
        LockError,
        "rwsem owner debugging (DEBUG_RWSEMS)",
        "an rw_semaphore released by a thread that does not hold it",
        "release an rw_semaphore on the thread that acquired it",
    ),
    _r(
        "hung-task",
        LockError,
        "the hung-task detector",
        "a thread blocked on a lock far longer than any correct run would (deadlock)",
        "take locks in one global order; never wait holding a lock the waker needs",
    ),
    _r(
        "deadlock",
        LockError,
        "loom/shuttle deadlock detection; the hung-task detector",
        "under the explorer, some thread is blocked and no thread can run",
        "take locks in one global order, and set every wake-up condition under the lock the "
        "waiter checks it with",
    ),
    _r(
        "livelock",
        LockError,
        "loom's max-branches limit; the soft-lockup detector",
        "under the explorer, a schedule ran more seam points than max_steps",
        "make every loop wait (sleep on a condition) instead of spinning on another thread",
    ),
    _r(
        "mmap-lock-not-held",
        LockError,
        "`mmap_assert_locked()`",
        "an mm operation that needs the mmap lock called without it",
        "hold the mmap lock (mmap_read_lock / mmap_write_lock) around the operation",
    ),
    # Send / Sync.
    _r(
        "send",
        SendError,
        "the `Send` auto trait; `NotThreadSafe` guards",
        "a !Send value handed to, used on, or released on another thread",
        "keep a !Send value (a guard, a CurrentTask) on the thread that made it",
    ),
    _r(
        "sync",
        SyncError,
        "the `Sync` auto trait",
        "a !Sync value shared between threads",
        "give each thread its own value, or put it behind a lock before sharing it",
    ),
    _r(
        "kmap-local-thread",
        SendError,
        "kmap_local_page: the mapping is valid on one thread",
        "a page mapping used on another thread than the one that mapped it",
        "use a kmap_local mapping only on the thread that mapped the page",
    ),
    # Lifetimes and borrows.
    _r(
        "lifetime",
        LifetimeError,
        "the borrow checker (lifetimes); KASAN use-after-free",
        "a reference used after its guard, owner or borrow ended",
        "use a reference only while its guard, owner or borrow is alive",
    ),
    _r(
        "borrow",
        BorrowError,
        "the borrow checker (aliasing XOR mutation); Miri",
        "an exclusive borrow while others live, or a shared one under an exclusive",
        "end every other borrow before taking an exclusive one (aliasing XOR mutation)",
    ),
    _r(
        "current-task-expired",
        LifetimeError,
        "`&CurrentTask` borrowing from `current!()`",
        "a CurrentTask used outside the task context it came from",
        "use a CurrentTask only inside the task context it came from",
    ),
    _r(
        "borrow-invalidated",
        BorrowError,
        "Miri's Stacked Borrows; the borrow checker's NLL",
        "a cursor, iterator or &mut V of an RBTree used after the tree was changed (or, "
        "under a CursorMut, read) through another path",
        "finish with the cursor (or iterator) before changing the tree another way",
    ),
    # Refcounts.
    _r(
        "refcount",
        RefcountError,
        "refcount_t debugging",
        "refcount misuse",
        "pair every increment with exactly one decrement",
    ),
    _r(
        "refcount-underflow",
        RefcountError,
        "refcount_t: underflow; use-after-free",
        "a refcount decremented below zero",
        "decrement a refcount only for a reference you own",
    ),
    _r(
        "refcount-inc-zero",
        RefcountError,
        "refcount_t: addition on 0; use-after-free",
        "a refcount incremented from zero",
        "take a new reference only from a live one (inc_not_zero on lookups)",
    ),
    _r(
        "double-drop",
        RefcountError,
        "Rust's move semantics (drop consumes the value)",
        "an ARef or Arc handle dropped twice",
        "drop each ARef or Arc handle once; clone it to get a second owner",
    ),
    _r(
        "aref-use-after-drop",
        RefcountError,
        "Rust's move semantics",
        "an ARef used after drop",
        "do not use an ARef after drop(); clone it first if it is still needed",
    ),
    _r(
        "arc-use-after-drop",
        RefcountError,
        "Rust's move semantics",
        "an Arc handle used after drop",
        "do not use an Arc handle after drop(); clone it first if still needed",
    ),
    _r(
        "file-ref-use-after-drop",
        RefcountError,
        "Rust's move semantics (`ARef<File>` consumed by its drop)",
        "a file reference (FileRef) used after its own drop (fput)",
        "do not use a FileRef after drop(); take another reference with fget first",
    ),
    _r(
        "drop-while-borrowed",
        LifetimeError,
        "the borrow checker: E0505, move out of (drop) a value while it is borrowed",
        "an owner dropped while a borrow of it lives (a page while it is kmapped, the "
        "last mm reference while its mmap guard lives); refused before anything is freed",
        "end the borrow (return from the kmap closure, release the guard) before the drop",
    ),
    _r(
        "page-refcount",
        RefcountError,
        "`put_page` on a zero refcount (VM_BUG_ON_PAGE)",
        "a struct page refcount underflow",
        "put_page only pages you hold a reference on, once each",
    ),
    _r(
        "mm-use-after-free",
        RefcountError,
        "KASAN on a freed mm_struct (mmdrop to zero)",
        "an Mm used after its last mmdrop",
        "hold an mmgrab reference (ARef<Mm>) for as long as the mm is used",
    ),
    _r(
        "mm-users-zero",
        RefcountError,
        "`MmWithUser` invariant: mm_users is non-zero",
        "an MmWithUser reference taken or used while mm_users is zero",
        "get an MmWithUser through mmget_not_zero and keep it while using the mm",
    ),
    _r(
        "noderef-use-after-drop",
        RefcountError,
        "Rust's move semantics (Binder `NodeRef`)",
        "a Binder node reference used after it was dropped",
        "do not use a NodeRef after dropping it",
    ),
    _r(
        "binder-node-underflow",
        RefcountError,
        "Binder's node refcount checks",
        "a Binder node's strong or weak count decremented below zero",
        "decrement a node's strong or weak count only for a reference you hold",
    ),
    _r(
        "arc-use-after-free",
        LifetimeError,
        "KASAN use-after-free of an `ArcInner`",
        "an Arc handle dereferenced after its allocation was freed (from_raw twice on one count)",
        "make one Arc handle per count: call Arc.from_raw once for each into_raw",
    ),
    # Pinning.
    # Intrusive lists (ownership.list).
    _r(
        "list-remove-wrong-list",
        UnsafeError,
        "`List::remove` Safety: the item is in this list or in no list with this id",
        "List::remove of an item that is in another list of the same id (CVE-2025-68260)",
        "remove an item only from the list it is in, under that list's lock",
    ),
    _r(
        "list-arc-not-unique",
        UnsafeError,
        "`ListArc` invariant: at most one ListArc per item and id (`ListArcSafe`)",
        "a second ListArc for an item and id that already has one (a tracker misused)",
        "get a ListArc with ListArc.try_from_arc, and give it back when the item leaves",
    ),
    _r(
        "list-arc-moved",
        RefcountError,
        "Rust's move semantics (`ListArc` consumed)",
        "a ListArc used after it was pushed into a list, converted with into_arc or dropped",
        "use the ListArc the list hands back (pop, remove), not the one that was pushed",
    ),
    _r(
        "list-borrowed",
        BorrowError,
        "the borrow checker: `Iter` borrows `&List`, `Cursor` `&mut List`",
        "a list changed while an iterator or cursor over it is live",
        "finish the iteration (close the cursor) before changing the list",
    ),
    _r(
        "binder-death-use-after-free",
        RefcountError,
        "KASAN on a freed `NodeDeath` (its last `DArc` dropped)",
        "a Binder death registration used after its last Arc count was dropped",
        "keep an Arc of the death registration for as long as it is used",
    ),
    _r(
        "pin",
        PinError,
        "`Pin<P>` / `PhantomPinned` (`!Unpin`)",
        "a pinned value (lock, condvar, Arc contents) moved or duplicated",
        "move a pinned value's handle, never the value (Arc.pin_init, KBox.pin_init)",
    ),
    # Unsafe.
    _r(
        "unsafe",
        UnsafeError,
        "the `unsafe` keyword",
        "an unsafe contract broken",
        "meet the unsafe function's Safety contract and say how in the SAFETY text",
    ),
    _r(
        "unsafe-call",
        UnsafeError,
        "calling an `unsafe fn` requires an `unsafe` block",
        "an unsafe function called outside `with unsafe(...)`",
        'call the unsafe function inside `with unsafe("SAFETY: ...")`',
    ),
    _r(
        "undocumented-unsafe",
        UnsafeError,
        "clippy::undocumented_unsafe_blocks (kernel policy)",
        "an unsafe block without a SAFETY justification",
        'justify the block: `with unsafe("SAFETY: why the contract holds")`',
    ),
    _r(
        "mm-from-raw-invalid",
        UnsafeError,
        "`Mm::from_raw` / `MmWithUser::from_raw` Safety",
        "from_raw on an mm_struct that is freed or has no users",
        "call from_raw only on a live mm_struct (with users, for MmWithUser)",
    ),
    _r(
        "vma-from-raw-invalid",
        UnsafeError,
        "`VmaRef::from_raw` Safety: the pointer is valid",
        "from_raw on a VMA that is no longer in the tree",
        "call VmaRef.from_raw only on a VMA that is still in the tree",
    ),
    _r(
        "vma-from-raw-unlocked",
        UnsafeError,
        "`VmaRef::from_raw` Safety: the mmap or VMA lock is held",
        "from_raw on a VMA without the lock that keeps it stable",
        "hold the mmap read lock or the VMA lock around VmaRef.from_raw",
    ),
    _r(
        "mixedmap-from-raw",
        UnsafeError,
        "`VmaMixedMap::from_raw` Safety: VM_MIXEDMAP is set",
        "from_raw claiming MIXEDMAP on a VMA without it",
        "test VM_MIXEDMAP (as_mixedmap_vma) instead of asserting it",
    ),
    _r(
        "vma-new-from-raw",
        UnsafeError,
        "`VmaNew::from_raw` Safety: the VMA is being set up",
        "from_raw on a VMA that is not inside its mmap handler",
        "use VmaNew.from_raw only inside the driver's mmap handler",
    ),
    _r(
        "page-use-after-drop",
        LifetimeError,
        "`Page` ownership (Drop frees the page)",
        "a Page used after drop",
        "do not use a Page after drop()",
    ),
    _r(
        "page-use-after-free",
        LifetimeError,
        "KASAN on a freed struct page",
        "a page reached after the C side freed it",
        "hold a reference on the page (get_page) for as long as you use it",
    ),
    _r(
        "borrowed-page-invalid",
        UnsafeError,
        "`BorrowedPage::from_raw` Safety: the page is valid",
        "from_raw on a page that is not allocated",
        "call BorrowedPage.from_raw only on an allocated page",
    ),
    _r(
        "borrowed-page-outlived-owner",
        LifetimeError,
        "`BorrowedPage<'a>`: dies with its owner",
        "a BorrowedPage used after the VBox (or other owner) was dropped",
        "use a BorrowedPage only while its VBox (or other owner) lives",
    ),
    _r(
        "binder-page-not-in-use",
        UnsafeError,
        "`ShrinkablePageRange::{read,write}` Safety",
        "a Binder buffer page accessed while it is not in use",
        "touch a Binder buffer page only while its range is in use",
    ),
    _r(
        "file-use-after-fput",
        LifetimeError,
        "KASAN on a `struct file` after its last fput",
        "a File used after its last reference was put",
        "hold a file reference (ARef<File>) for as long as you use the file",
    ),
    _r(
        "binder-allocation-use-after-free",
        LifetimeError,
        "Binder `Allocation` ownership",
        "a Binder allocation used after it was freed",
        "do not use a Binder allocation after it was freed",
    ),
    # VMA flags (the rule table's ids are added by all_rules()).
    _r(
        "vma-flags",
        VmaFlagError,
        "the VMA flag rules (see ownership.mm.vma_rules)",
        "a VMA flag rule broken",
        "change VMA flags only as the rule table allows (python -m ownership rules)",
    ),
)


def all_rules() -> list[Rule]:
    """`RULES` plus one entry per VMA flag rule of the rule table."""
    out = list(RULES)
    for r in VMA_RULES:
        fix = f"keep the VMA's flags within the rule ({r.summary})"
        out.append(Rule(r.id, VmaFlagError, f'{r.source}: "{r.quote}"', r.summary, fix))
    return out


_FIXES: dict[str, str] = {r.id: r.fix for r in all_rules()}


def fix_for(rule: str) -> str | None:
    """The correct pattern for `rule` (the last line of a violation's report)."""
    return _FIXES.get(rule)


# Every violation's report ends with its rule's `fix`: the hints live here, with the rules.
install_fix_hints(fix_for)


def _ids() -> set[str]:
    return {r.id for r in all_rules()}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m ownership rules", description=__doc__)
    ap.add_argument("--format", choices=("md", "json"), default="md")
    a = ap.parse_args(argv)
    rules = all_rules()
    if a.format == "json":
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "error": r.error.__name__,
                        "models": r.models,
                        "summary": r.summary,
                        "fix": r.fix,
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return 0
    print("| rule | what it catches | Rust / kernel mechanism modelled | error |")
    print("|---|---|---|---|")
    for r in rules:
        models = r.models.replace("|", "\\|")
        print(f"| `{r.id}` | {r.summary} | {models} | `{r.error.__name__}` |")
    return 0


assert all(issubclass(r.error, (SafetyViolation, KernelBug)) for r in RULES)
