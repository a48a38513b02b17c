"""A process's address space against a reference model (hypothesis state machine).

The machine maps, unmaps, protects, advises, writes, reads and forks at random, and
keeps a page-granular model of what userspace must see: which pages are mapped, with
which protection, holding which bytes. After every step the kernel must agree with the
model and pass its own consistency check (VMA tree, PTEs, refcounts and mapcounts).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ownership.bindings import (
    MADV_DONTFORK,
    MADV_DONTNEED,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_PRIVATE,
    MAP_SHARED,
    PAGE_SIZE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
    Kernel,
)
from ownership.errors import EFAULT, ENOMEM, KernelError
from ownership.samples.rust_misc_device_mmap import RustMiscDeviceMmap, page_header

PROTS = st.sampled_from(
    [PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE, PROT_WRITE, PROT_EXEC, PROT_READ | PROT_EXEC]
)


@dataclass
class ModelPage:
    prot: int
    shared: bool
    data: bytearray = field(default_factory=lambda: bytearray(PAGE_SIZE))
    device: bool = False
    dontfork: bool = False


class AddressSpace(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kernel = Kernel(pages_per_node=2048)
        self.kernel.register_miscdevice("rust-misc-device", RustMiscDeviceMmap())
        self.proc = self.kernel.spawn_process("model")
        self.pages: dict[int, ModelPage] = {}
        self.starts: list[int] = []

    def teardown(self) -> None:
        self.proc.exit()
        assert not self.kernel.check_consistency()

    def _page(self, data: st.DataObject) -> int | None:
        if not self.pages:
            return None
        return data.draw(st.sampled_from(sorted(self.pages)))

    @rule(n=st.integers(1, 4), prot=PROTS, shared=st.booleans())
    def mmap_anon(self, n: int, prot: int, shared: bool) -> None:
        kind = MAP_SHARED if shared else MAP_PRIVATE
        addr = self.proc.mmap(None, n * PAGE_SIZE, prot, kind | MAP_ANONYMOUS)
        for i in range(n):
            assert addr + i * PAGE_SIZE not in self.pages
            self.pages[addr + i * PAGE_SIZE] = ModelPage(prot, shared)
        self.starts.append(addr)

    @rule(data=st.data(), n=st.integers(1, 3), prot=PROTS)
    def mmap_fixed_over(self, data: st.DataObject, n: int, prot: int) -> None:
        at = self._page(data)
        if at is None:
            return
        addr = self.proc.mmap(
            None, n * PAGE_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, addr=at
        )
        assert addr == at
        for i in range(n):
            self.pages[at + i * PAGE_SIZE] = ModelPage(prot, False)

    @rule(n=st.integers(1, 3))
    def mmap_device(self, n: int) -> None:
        with self.proc.as_current():
            f = self.proc.open("rust-misc-device")
            addr = self.proc.mmap(f, n * PAGE_SIZE, PROT_READ, MAP_SHARED)
            f.close()
        for i in range(n):
            page = ModelPage(PROT_READ, True, device=True, dontfork=True)
            header = page_header(i)
            page.data[: len(header)] = header
            self.pages[addr + i * PAGE_SIZE] = page

    @rule(data=st.data(), before=st.integers(0, 2), n=st.integers(1, 4))
    def munmap(self, data: st.DataObject, before: int, n: int) -> None:
        at = self._page(data)
        if at is None:
            return
        start = at - before * PAGE_SIZE
        self.proc.munmap(start, n * PAGE_SIZE)
        for i in range(n):
            self.pages.pop(start + i * PAGE_SIZE, None)

    @rule(data=st.data(), n=st.integers(1, 3), prot=PROTS)
    def mprotect(self, data: st.DataObject, n: int, prot: int) -> None:
        at = self._page(data)
        if at is None:
            return
        span = [at + i * PAGE_SIZE for i in range(n)]
        covered = all(a in self.pages for a in span)
        refused = covered and any(self.pages[a].device and prot & PROT_WRITE for a in span)
        try:
            self.proc.mprotect(at, n * PAGE_SIZE, prot)
        except KernelError as e:
            assert not covered or refused, e
            assert e.errno == (ENOMEM if not covered else e.errno)
            if refused:
                # mprotect stops at the first refused VMA; earlier ones changed.
                for a in span:
                    if self.pages[a].device and prot & PROT_WRITE:
                        break
                    self.pages[a].prot = prot
            return
        assert covered and not refused
        for a in span:
            self.pages[a].prot = prot

    @rule(
        data=st.data(),
        off=st.integers(0, PAGE_SIZE - 1),
        payload=st.binary(min_size=1, max_size=64),
    )
    def write(self, data: st.DataObject, off: int, payload: bytes) -> None:
        at = self._page(data)
        if at is None:
            return
        payload = payload[: PAGE_SIZE - off]
        page = self.pages[at]
        try:
            self.proc.write_user(at + off, payload)
        except KernelError as e:
            assert e.errno == EFAULT and not page.prot & PROT_WRITE
            return
        assert page.prot & PROT_WRITE
        page.data[off : off + len(payload)] = payload

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        at = self._page(data)
        if at is None:
            return
        page = self.pages[at]
        try:
            got = self.proc.read_user(at, PAGE_SIZE)
        except KernelError as e:
            assert e.errno == EFAULT and page.prot == PROT_NONE
            return
        assert page.prot != PROT_NONE
        assert got == bytes(page.data)

    @rule(data=st.data())
    def madvise(self, data: st.DataObject) -> None:
        at = self._page(data)
        if at is None or self.pages[at].device:
            return
        page = self.pages[at]
        if data.draw(st.booleans()):
            self.proc.madvise(at, PAGE_SIZE, MADV_DONTNEED)
            if not page.shared:
                page.data = bytearray(PAGE_SIZE)
        else:
            self.proc.madvise(at, PAGE_SIZE, MADV_DONTFORK)
            page.dontfork = True

    @rule()
    def fork(self) -> None:
        child = self.proc.fork()
        for a, page in self.pages.items():
            if page.prot == PROT_NONE:
                continue
            if page.dontfork:
                try:
                    child.read_user(a, 1)
                except KernelError:
                    continue
                raise AssertionError(f"{a:#x} was copied despite VM_DONTCOPY")
            assert child.read_user(a, PAGE_SIZE) == bytes(page.data)
            if page.prot & PROT_WRITE:
                child.write_user(a, b"\xee")
                if page.shared:
                    page.data[0] = 0xEE
        child.exit()

    @invariant()
    def agrees_with_the_model(self) -> None:
        mm = self.proc.mm
        assert mm is not None
        mapped = {a for v in mm.vmas for a in v.pages()}
        assert mapped == set(self.pages), sorted(mapped ^ set(self.pages))
        for v in mm.vmas:
            for a in v.pages():
                assert v.vm_flags & 0x7 == self.pages[a].prot & 0x7
        assert not self.kernel.check_consistency(), self.kernel.check_consistency()


AddressSpace.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAddressSpace = AddressSpace.TestCase
