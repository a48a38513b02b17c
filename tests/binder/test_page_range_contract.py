"""The page accessors of `ShrinkablePageRange` share one Safety contract, read by the tools.

`read`, `write`, `fill_zero` and `copy_from_user_slice` declare
`@unsafe_fn(safety=PAGES_IN_USE, checked=PAGES_IN_USE_CHECKED)`: the contract review
(a source scan) and the runtime registry must both see the constant's text, never a
placeholder for a computed argument.
"""

from __future__ import annotations

import binder.page_range as page_range
from binder.page_range import PAGES_IN_USE, PAGES_IN_USE_CHECKED
from ownership.tools import contracts
from ownership.unsafe import contracts as unsafe_contracts

ACCESSORS = ("read", "write", "fill_zero", "copy_from_user_slice")
PREFIX = "binder.page_range.ShrinkablePageRange."


def test_the_review_reads_the_shared_text_from_the_source() -> None:
    r = contracts.review([page_range.__file__], import_modules=False)
    found = {c.qualname: c for c in r.contracts if c.qualname.startswith(PREFIX)}
    assert set(found) == {PREFIX + name for name in ACCESSORS}
    for c in found.values():
        assert (c.safety, c.checked) == (PAGES_IN_USE, PAGES_IN_USE_CHECKED), c.qualname


def test_the_runtime_registry_has_the_shared_text() -> None:
    registered = {c.qualname: c for c in unsafe_contracts()}
    for name in ACCESSORS:
        contract = registered[PREFIX + name]
        assert (contract.safety, contract.checked) == (PAGES_IN_USE, PAGES_IN_USE_CHECKED)
