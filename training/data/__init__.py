"""Data sources for training, each converted into the canonical tables of :mod:`.schema`.

``load_dataset(name, data_dir, **options)`` is the one entry point; ``DATASETS`` lists the
names it accepts:

- ``synthetic``: the seeded demo shop of :mod:`.synthetic` (no files; options are
  :func:`~training.data.synthetic.generate_shop` arguments such as ``seed``)
- ``hm``: H&M Personalized Fashion Recommendations, see :mod:`.hm`
- ``online_retail``: UCI Online Retail, see :mod:`.online_retail`
- ``renttherunway``: RentTheRunway clothing fit, see :mod:`.renttherunway`
- ``canonical``: a shop's own export in canonical form, see :mod:`.canonical`

Every dataset except ``synthetic`` needs ``data_dir``. A missing directory or file, a missing
column or a value of the wrong type raises :class:`DataError` naming the path and what was
expected.
"""

from __future__ import annotations

from pathlib import Path

from training.data.schema import CanonicalData, DataError

DATASETS = ("synthetic", "hm", "online_retail", "renttherunway", "canonical")

_EXPECTED_FILES = {
    "hm": "articles.parquet or articles.csv, transactions.parquet or transactions_train.csv, "
          "optionally customers_sample.csv.gz",
    "online_retail": "online_retail.parquet or online_retail.csv",
    "renttherunway": "renttherunway.parquet or renttherunway.csv",
    "canonical": "purchases and items (.parquet or .csv), optionally customers and events",
}


def load_dataset(name: str, /, data_dir: str | Path | None = None,
                 **options) -> CanonicalData:
    """Load dataset ``name`` from ``data_dir`` as :class:`CanonicalData`.

    ``options`` go to the adapter (for ``synthetic``: ``seed``, ``n_customers``, ``n_items``,
    ``days``, ``end``; for ``canonical``: ``name``, the source's name in later messages, which is
    why ``name`` here is positional-only); an option the adapter does not take is a
    ``TypeError``.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "synthetic":
        if data_dir is not None:
            raise DataError(f"dataset 'synthetic' is generated and reads no files; "
                            f"got data_dir {str(data_dir)!r}")
        from training.data.synthetic import generate_shop
        return generate_shop(**options)
    if data_dir is None:
        raise DataError(f"dataset {name!r} needs a data directory holding "
                        f"{_EXPECTED_FILES[name]}")
    path = Path(data_dir)
    if not path.is_dir():
        raise DataError(f"{path}: no such directory; dataset {name!r} expects it to hold "
                        f"{_EXPECTED_FILES[name]}")
    if name == "hm":
        from training.data import hm as adapter
    elif name == "online_retail":
        from training.data import online_retail as adapter
    elif name == "renttherunway":
        from training.data import renttherunway as adapter
    else:
        from training.data import canonical as adapter
    return adapter.load(path, **options)


__all__ = ["DATASETS", "CanonicalData", "DataError", "load_dataset"]
