"""The headers both sides read, as the kernel's include/linux: the floor of the model.

What the Rust side (`ownership`) and the simulated C kernel (`ownership.bindings`) both
need and that is neither: the `VM_*` bits (`vm_flags`, include/linux/mm.h), the
expression language of the VMA flag rules (`vma_expr`), the rule tables (`vma_rules`)
and the flag-changing operations (`vma_ops`). `proofs/` reads these modules and nothing
else of `ownership` beyond the runtime core.

This package is a leaf: it imports only the runtime core (`ownership.errors`,
`ownership.config`, `ownership.site`), never `ownership.bindings` nor the Rust side (an
import-linter contract and a test check it).

Lock order: no locks.
"""
