"""binder: the Rust Android Binder driver (drivers/android/binder/), over `ownership` only.

The driver reaches the (simulated) C kernel exclusively through the `ownership`
abstractions, as Rust Binder reaches it through `kernel::`; `import-linter` enforces
that nothing here imports the simulated C side directly.

The driver, laid out as upstream's files: `range_alloc` (the per-process buffer
allocator), `page_range` (the shrinkable pages behind the mapping), `allocation` (a
buffer in use, with its `AllocationView`), `process` (the per-open-file `Process`),
`freeze` (`BINDER_FREEZE`), `thread`, `transaction`, `node` (with `node.wrapper`),
`device_context` (upstream context.rs), `work`, `error`, `defs`, and
`rust_binder_main` (`/dev/binder` and the shrinker). `register(kernel)` registers the
device with a simulated kernel.

The userspace side (`client`, `servicemanager`, `demo`, `bench`) speaks to the driver
only through the UAPI (`uapi`: `/dev/binder`, its ioctls and the mapped buffer); an
import-linter contract in pyproject.toml keeps it from importing driver modules.
`alloc_kunit` (the KUnit port) is a kernel-side test and drives `Process` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rust_binder_main import BinderRegistration

__all__ = ["register"]


def register(kernel: Any, name: str = "binder") -> BinderRegistration:
    """Register `/dev/<name>` and the binder shrinker with a simulated kernel."""
    # Imported here, not at module level: every module of the package, the userspace
    # side (`binder.uapi`, `binder.client`) included, first runs this file, and the
    # userspace side must not load the driver (see the import-linter contract).
    from .rust_binder_main import register as _register

    return _register(kernel, name)
