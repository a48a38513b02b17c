"""Tests of the Z3 proofs package."""
