"""Reusable layout builders: pure functions from data to components."""
