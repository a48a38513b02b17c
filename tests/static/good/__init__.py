"""Correct driver snippets: the checker must stay silent on every one of them."""
