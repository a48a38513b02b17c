"""Snippets that break `guard-escape`."""
