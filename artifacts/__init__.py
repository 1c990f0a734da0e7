"""What the trainer and the service share, and nothing else.

The two contracts:

* :mod:`artifacts.bundle` - the on-disk bundle format (files + manifest), written and read by the
  same code so the two sides cannot drift;
* :mod:`artifacts.profiles` - the per-customer profile Structs and the Redis key scheme.

And the code both sides must run identically so that what is evaluated offline is what is
served: :mod:`artifacts.catalog` (the serving view of a bundle), :mod:`artifacts.ranking`
(candidate filtering and fallbacks), :mod:`artifacts.sizing` (the size to preselect) and
:mod:`artifacts.homepage` (sections of the personalised homepage). Nothing in here imports the trainer, the service,
Litestar, implicit or scipy.
"""
