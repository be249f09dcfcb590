"""``python -m skcgcnn``: the same as the ``skcgcnn`` command (see :mod:`skcgcnn.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
