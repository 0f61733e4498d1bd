"""Simulated ``cupyx.scipy``."""
