"""Sample drivers written against the abstractions, as samples/rust/ in the kernel tree.

Each sample module marks itself with `ownership.site.driver_module(__file__)`, so that
violations report the sample's own lines, as they would for any driver.
"""
