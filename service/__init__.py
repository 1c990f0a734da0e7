"""Low-latency Litestar service answering from a trained bundle and Redis-cached profiles.

Build the app with :func:`service.app.create_app`; run it with ``python -m service serve``.
The service never imports the trainer, implicit or scipy: it meets training only in the
:mod:`artifacts` contracts.
"""
