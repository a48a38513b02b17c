"""binder: the Rust Android Binder driver (drivers/android/binder/), over `ownership` only.

The driver reaches the (simulated) C kernel exclusively through the `ownership`
abstractions, as Rust Binder reaches it through `kernel::`; `import-linter` enforces
that nothing here imports `ownership.bindings`.

Memory layer: `range_alloc` (the per-process buffer allocator), `page_range` (the
shrinkable pages behind the mapping), `allocation` (a buffer in use), `process` (the
per-open-file `Process` with its mapping), `rust_binder_main` (`/dev/binder` and the
shrinker). `register(kernel)` registers the device with a simulated kernel.
"""
