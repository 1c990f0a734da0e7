"""The two contracts shared by the trainer and the service.

* :mod:`artifacts.bundle` - the on-disk bundle format (files + manifest), written and read by the
  same code so the two sides cannot drift.
* :mod:`artifacts.profiles` - the per-customer profile Structs and the Redis key scheme.

Nothing in here imports the trainer, the service, Litestar, implicit or scipy.
"""
