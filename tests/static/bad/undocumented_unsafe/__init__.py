"""Snippets that break `undocumented-unsafe`."""
