"""Snippets that break `unsafe-call`."""
