"""Memory management (rust/kernel/mm.rs): `Mm`, `MmWithUser`, the mmap lock guards.

(The abstractions are added by the mm work; `flags` and `vma_rules` are the shared
rule table read by the runtime and by `proofs/`.)
"""
