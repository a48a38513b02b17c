"""Bugs the static checker cannot see (documented limits); only the runtime catches them."""
