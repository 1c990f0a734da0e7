"""Offline models. Each module fits one family and returns plain arrays for the bundle."""
