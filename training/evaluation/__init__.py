"""Offline evaluation: metrics and time-based splits."""
