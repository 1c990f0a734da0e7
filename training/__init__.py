"""Offline trainer: canonical tables in, a versioned bundle and batch profiles out.

Run ``python -m training --help``. The trainer never imports the service or Litestar; it meets
the service only in the :mod:`artifacts` contracts.
"""
