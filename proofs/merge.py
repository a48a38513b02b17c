"""Claim 4: VM_SPECIAL VMAs never merge; splitting keeps every piece within the rules.

Two claims. `special_never_merged` reads the table's merge predicate `CAN_MERGE` for
every pair of 64-bit flag values. `split_merge` is geometric: two or three adjacent
VMAs with symbolic page-aligned boundaries and reachable flags (the state rules,
claim 1), and a symbolic page-aligned range that `munmap` or `mprotect(prot)` covers.
Each VMA falls into up to three pieces (before, inside, after the range); the pieces
outside keep the flags (`split_vma`, from the table), the inside piece is removed
(`munmap`) or takes `mprotect`'s result when its guard passes (mprotect stops at the
first VMA that refuses, leaving earlier ones changed). Then any two or three touching
pieces whose flags `CAN_MERGE` says may merge are merged into `MERGE_RESULT`. Proved:
every piece and every merged VMA satisfies the state rules, and every merge joins
non-special pieces whose flags agree except for VM_SOFTDIRTY. Vacuity: a split, a
merge and a split VM_SPECIAL VMA must each be possible.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ownership.include import vm_flags as F
from ownership.include import vma_expr as E

from .claim import Claim, Expect
from .encode import Env, formula, term
from .outcome import Outcome
from .step import SymState, encode_op, rule_holds
from .table import Mutation, Table, drop_guard
from .trace import fmt_value, greedy, quiet_mask
from .z3api import (
    BV,
    MASK,
    Bool,
    Model,
    Solver,
    and_,
    bool_val,
    bool_var,
    bv_and,
    bv_eq,
    bv_ite,
    bv_ule,
    bv_ult,
    bv_val,
    bv_var,
    bv_xor,
    has,
    not_,
    or_,
)

__all__ = ["CLAIMS", "SPECIAL_NEVER_MERGED", "SPLIT_MERGE", "drop_special_exclusion"]

PAGE_SIZE = 4096
"""x86-64 base page size: VMA boundaries and munmap/mprotect ranges are multiples."""

TASK_SIZE = (1 << 47) - PAGE_SIZE
"""x86-64 TASK_SIZE_MAX with 4-level paging: the end of the user address space."""

MMAP_MIN_ADDR = 0x10000
"""The default `vm.mmap_min_addr`: no VMA starts below it."""


def _can_merge(t: Table, a: BV, b: BV) -> Bool:
    return formula(t.can_merge, Env({"a": a, "b": b}))


def _merged(t: Table, a: BV, b: BV) -> BV:
    return term(t.merge_result, Env({"a": a, "b": b}))


def _inv(t: Table, f: BV) -> Bool:
    return and_(*[rule_holds(r, f, f) for r in t.state_rules])


def _identical(a: BV, b: BV) -> Bool:
    """`!((a ^ b) & ~VM_SOFTDIRTY)`: is_mergeable_vma()'s flag comparison."""
    return bv_eq(bv_and(bv_xor(a, b), bv_val(MASK & ~F.SOFTDIRTY)), bv_val(0))


# --------------------------------------------------------------------------------------
# special_never_merged


def _check_special(t: Table, hint: Expect) -> Outcome:
    # mm.h: #define VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP)
    if F.IO | F.DONTEXPAND | F.PFNMAP | F.MIXEDMAP != F.SPECIAL:
        return Outcome("counterexample", f"VM_SPECIAL is {F.names(F.SPECIAL)}")
    a, b = bv_var("sp.a"), bv_var("sp.b")
    s = Solver()
    s.add(or_(has(a, F.SPECIAL), has(b, F.SPECIAL)))
    r = s.check()
    if r != "sat":
        return Outcome("unknown", detail="vacuous: no VM_SPECIAL flags")
    s.add(_can_merge(t, a, b))
    r = s.check()
    if r == "unsat":
        return Outcome("proved", detail="for all 2^128 pairs of flag values", queries=2)
    if r == "unknown":
        return Outcome("unknown", detail="solver gave up")
    m = s.model()
    va, vb = m.int_of(a), m.int_of(b)
    return Outcome(
        "counterexample",
        f"{F.names((va | vb) & F.SPECIAL)} merged: {F.names(va)} + {F.names(vb)}",
    )


SPECIAL_NEVER_MERGED = Claim(
    name="special_never_merged",
    expect="holds",
    doc="""VM_SPECIAL == IO|DONTEXPAND|PFNMAP|MIXEDMAP VMAs are never merged with others.

    mm/vma.c: "if (vm_flags & VM_SPECIAL) return NULL" (vma_merge); include/linux/mm.h:
    "#define VM_SPECIAL (VM_IO | VM_DONTEXPAND | VM_PFNMAP | VM_MIXEDMAP)". For every pair
    of 64-bit flag values one of which has a VM_SPECIAL bit, the table's CAN_MERGE is
    false.""",
    check=_check_special,
    kind="flags",
)


def drop_special_exclusion() -> Mutation:
    """CAN_MERGE without its VM_SPECIAL conjuncts (one alone is redundant: the flags
    must agree, so both pieces are special or neither is)."""

    def f(t: Table) -> Table:
        cm = t.can_merge
        if not isinstance(cm, E.And):
            raise ValueError("CAN_MERGE is not a conjunction")
        keep = tuple(
            a
            for a in cm.args
            if not (isinstance(a, E.Not) and isinstance(a.a, E.Has) and a.a.mask == F.SPECIAL)
        )
        if len(keep) == len(cm.args):
            raise ValueError("CAN_MERGE has no VM_SPECIAL conjunct")
        return dataclasses.replace(t, can_merge=E.And(*keep))

    return Mutation("merge-without-special", "CAN_MERGE without its VM_SPECIAL exclusion", f)


def drop_identical() -> Mutation:
    """CAN_MERGE without its flag comparison."""

    def f(t: Table) -> Table:
        cm = t.can_merge
        if not isinstance(cm, E.And):
            raise ValueError("CAN_MERGE is not a conjunction")
        keep = tuple(a for a in cm.args if not isinstance(a, E.Eq))
        if len(keep) == len(cm.args):
            raise ValueError("CAN_MERGE has no flag comparison")
        return dataclasses.replace(t, can_merge=E.And(*keep))

    return Mutation("merge-without-flag-comparison", "CAN_MERGE without its flag comparison", f)


# --------------------------------------------------------------------------------------
# split_merge


@dataclass(frozen=True)
class _Piece:
    """A part of one original VMA after the split."""

    vma: int
    where: str
    start: BV
    end: BV
    exists: Bool
    flags: BV


def _umin(a: BV, b: BV) -> BV:
    return bv_ite(bv_ult(a, b), a, b)


def _umax(a: BV, b: BV) -> BV:
    return bv_ite(bv_ult(a, b), b, a)


def _aligned(x: BV) -> Bool:
    return bv_eq(bv_and(x, bv_val(PAGE_SIZE - 1)), bv_val(0))


@dataclass
class _Geometry:
    """The symbolic VMAs, the munmap/mprotect call, and the pieces it leaves.

    Invariants: `pieces` lists, for each VMA in address order, its whole, before,
    inside and after pieces (at most the whole one or the others exist); `applied[i]`
    says mprotect changed VMA `i`.
    """

    premises: list[Bool]
    bounds: list[BV]
    flags: list[BV]
    start: BV
    end: BV
    is_mprotect: Bool
    prot: BV
    pieces: list[_Piece]
    applied: list[Bool]


def _geometry(t: Table, n: int, tag: str) -> _Geometry:
    """`n` adjacent VMAs and one munmap/mprotect range over them, split into pieces."""
    mprotect = t.op("mprotect")
    split = t.op("split_vma")
    bounds = [bv_var(f"{tag}.b{i}") for i in range(n + 1)]
    flags = [bv_var(f"{tag}.v{i}") for i in range(n)]
    start, end = bv_var(f"{tag}.start"), bv_var(f"{tag}.end")
    is_mprotect = bool_var(f"{tag}.is_mprotect")
    premises: list[Bool] = [_aligned(b) for b in bounds]
    premises += [bv_ult(bounds[i], bounds[i + 1]) for i in range(n)]
    premises += [bv_ule(bv_val(MMAP_MIN_ADDR), bounds[0]), bv_ule(bounds[n], bv_val(TASK_SIZE))]
    premises += [_aligned(start), _aligned(end)]
    premises += [bv_ule(bounds[0], start), bv_ult(start, end), bv_ule(end, bounds[n])]
    premises += [_inv(t, f) for f in flags]

    pieces: list[_Piece] = []
    applied: list[Bool] = []
    prefix_ok: Bool = bool_val(True)
    prot: BV | None = None
    for i in range(n):
        lo, hi = bounds[i], bounds[i + 1]
        pre = SymState(flags[i], bool_val(False))
        kept = encode_op(t, split, pre, f"{tag}.split{i}")
        mp = encode_op(t, mprotect, pre, f"{tag}.mprotect{i}")
        if prot is None:
            prot = mp.params["prot"]
            premises.append(mp.domain)
        else:
            # One mprotect call: every VMA sees the same prot.
            premises.append(bv_eq(mp.params["prot"], prot))
        in_lo, in_hi = _umax(lo, start), _umin(hi, end)
        touched = bv_ult(in_lo, in_hi)
        # do_mprotect_pkey() stops at the first VMA whose flags refuse the change, and
        # mprotect_fixup() leaves a VMA whose flags would not change alone.
        prefix_ok = and_(prefix_ok, or_(not_(touched), mp.guard))
        changes = and_(
            is_mprotect, prefix_ok, touched, kept.enabled, not_(bv_eq(mp.post.flags, flags[i]))
        )
        # munmap splits every VMA it touches; the inside piece disappears. A VMA that
        # refuses to be split (the table's split_vma guard) stays whole.
        split_here = and_(or_(changes, and_(not_(is_mprotect), touched)), kept.enabled)
        applied.append(changes)
        before_end = _umin(hi, start)
        after_start = _umax(lo, end)
        pieces += [
            _Piece(i, "whole", lo, hi, not_(split_here), flags[i]),
            _Piece(
                i,
                "before",
                lo,
                before_end,
                and_(split_here, bv_ult(lo, before_end)),
                kept.post.flags,
            ),
            _Piece(i, "inside", in_lo, in_hi, changes, mp.post.flags),
            _Piece(
                i,
                "after",
                after_start,
                hi,
                and_(split_here, bv_ult(after_start, hi)),
                kept.post.flags,
            ),
        ]
    assert prot is not None
    return _Geometry(premises, bounds, flags, start, end, is_mprotect, prot, pieces, applied)


def _touch(p: _Piece, q: _Piece) -> Bool:
    return and_(p.exists, q.exists, bv_eq(p.end, q.start))


def _violations(t: Table, g: _Geometry) -> list[tuple[str, Bool, tuple[_Piece, ...]]]:
    """Every way the claim can fail, each with a label and the pieces involved."""
    out: list[tuple[str, Bool, tuple[_Piece, ...]]] = []
    ps = g.pieces
    for p in ps:
        out.append(("piece breaks a state rule", and_(p.exists, not_(_inv(t, p.flags))), (p,)))
    for i, p in enumerate(ps):
        for j in range(i + 1, len(ps)):
            q = ps[j]
            merge = and_(_touch(p, q), _can_merge(t, p.flags, q.flags))
            pq = _merged(t, p.flags, q.flags)
            out += [
                (
                    "VM_SPECIAL piece merged",
                    and_(merge, or_(has(p.flags, F.SPECIAL), has(q.flags, F.SPECIAL))),
                    (p, q),
                ),
                (
                    "pieces with different flags merged",
                    and_(merge, not_(_identical(p.flags, q.flags))),
                    (p, q),
                ),
                ("merged VMA breaks a state rule", and_(merge, not_(_inv(t, pq))), (p, q)),
            ]
            for k in range(j + 1, len(ps)):
                r = ps[k]
                three = and_(
                    merge, _touch(q, r), _can_merge(t, q.flags, r.flags), _can_merge(t, pq, r.flags)
                )
                out.append(
                    (
                        "three-way merged VMA breaks a state rule",
                        and_(three, not_(_inv(t, _merged(t, pq, r.flags)))),
                        (p, q, r),
                    )
                )
    return out


def _witnesses(t: Table, g: _Geometry) -> list[tuple[str, Bool]]:
    """Cases the proof must not be vacuous about."""
    ps = g.pieces
    split = or_(
        *[
            and_(a, before.exists)
            for a, before in zip(g.applied, [p for p in ps if p.where == "before"], strict=True)
        ]
    )
    cross = [
        and_(_touch(p, q), _can_merge(t, p.flags, q.flags))
        for i, p in enumerate(ps)
        for q in ps[i + 1 :]
        if p.vma != q.vma
    ]
    special_split = or_(
        *[and_(p.exists, has(p.flags, F.SPECIAL)) for p in ps if p.where in ("before", "after")]
    )
    return [
        ("an mprotect that splits a VMA", split),
        ("a merge across original VMAs", or_(*cross)),
        ("a VM_SPECIAL VMA split in pieces", special_split),
    ]


def _fmt_geometry(g: _Geometry, m: Model) -> str:
    vmas = ", ".join(
        f"[{m.int_of(g.bounds[i]):#x},{m.int_of(g.bounds[i + 1]):#x}) {F.names(m.int_of(f))}"
        for i, f in enumerate(g.flags)
    )
    lo, hi = m.int_of(g.start), m.int_of(g.end)
    if m.bool_of(g.is_mprotect):
        op = f"mprotect({lo:#x}, {hi - lo:#x}, {fmt_value('prot', m.int_of(g.prot))})"
    else:
        op = f"munmap({lo:#x}, {hi - lo:#x})"
    return f"VMAs {vmas}; {op}"


def _fmt_piece(p: _Piece, m: Model) -> str:
    return (
        f"{p.where} piece of VMA {p.vma} [{m.int_of(p.start):#x},{m.int_of(p.end):#x}) "
        f"{F.names(m.int_of(p.flags))}"
    )


def _readable(t: Table, s: Solver, g: _Geometry) -> Model:
    """A model with few flag bits and short addresses (preferences kept if possible)."""
    m = s.model()
    quiet = quiet_mask(t, 0)
    prefs = [and_(*[bv_eq(bv_and(f, bv_val(MASK & ~quiet)), bv_val(0)) for f in g.flags])]
    small = bv_val(1 << 24)
    prefs.append(and_(*[bv_ult(b, small) for b in g.bounds]))
    for i in reversed(range(F.VM_FLAGS_BITS)):
        if quiet >> i & 1:
            prefs.append(and_(*[not_(has(f, 1 << i)) for f in g.flags]))
    with s.scope():
        return greedy(s, m, prefs)


def _check_split_merge(t: Table, hint: Expect) -> Outcome:
    queries = 0
    details: list[str] = []
    for n in (2, 3):
        g = _geometry(t, n, f"sm{n}")
        s = Solver(60_000)
        s.add(*g.premises)
        queries += 1
        if s.check() != "sat":
            return Outcome("unknown", detail=f"vacuous: no {n} adjacent VMAs", queries=queries)
        for label, w in _witnesses(t, g):
            with s.scope():
                s.add(w)
                queries += 1
                if s.check() != "sat":
                    return Outcome(
                        "unknown", detail=f"vacuous: never {label} ({n} VMAs)", queries=queries
                    )
        viol = _violations(t, g)
        with s.scope():
            s.add(or_(*[v for _, v, _ in viol]))
            queries += 1
            r = s.check()
            if r == "unknown":
                return Outcome("unknown", detail=f"solver gave up ({n} VMAs)", queries=queries)
            if r == "sat":
                m = _readable(t, s, g)
                for label, v, involved in viol:
                    if m.bool_of(v):
                        what = " + ".join(_fmt_piece(p, m) for p in involved)
                        return Outcome(
                            "counterexample",
                            f"{label}: {what} after {_fmt_geometry(g, m)}",
                            queries=queries,
                        )
                return Outcome("unknown", detail="model matches no violation", queries=queries)
        details.append(f"{n} VMAs: {len(g.pieces)} pieces, {len(viol)} obligations")
    return Outcome("proved", detail="; ".join(details), queries=queries)


SPLIT_MERGE = Claim(
    name="split_merge",
    expect="holds",
    doc="""Splitting VMAs keeps every piece within the rules; only like, non-special flags merge.

    mm/vma.c __split_vma(): "new = vm_area_dup(vma)" (each piece keeps the flags);
    is_mergeable_vma(): "if ((vma->vm_flags ^ vmg->flags) & ~VM_SOFTDIRTY) return false";
    vma_merge(): "if (vm_flags & VM_SPECIAL) return NULL". Over two and three adjacent
    VMAs with reachable flags, for every page-aligned munmap or mprotect range over
    them: every piece, and every two- or three-way merge of touching pieces that
    CAN_MERGE allows, satisfies the state rules; every merge joins non-special flags
    equal up to VM_SOFTDIRTY.""",
    check=_check_split_merge,
    rules=("mixedmap-pfnmap", "read-mayread", "write-maywrite", "exec-mayexec"),
    kind="merge",
)

CLAIMS: tuple[Claim, ...] = (
    SPECIAL_NEVER_MERGED,
    SPECIAL_NEVER_MERGED.twin(drop_special_exclusion()),
    SPLIT_MERGE,
    SPLIT_MERGE.twin(drop_special_exclusion()),
    SPLIT_MERGE.twin(drop_identical()),
    SPLIT_MERGE.twin(drop_guard("mprotect")),
)
