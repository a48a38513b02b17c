"""Snippets that break `atomic-sleep`."""
