"""Snippets that break `send-handoff`."""
