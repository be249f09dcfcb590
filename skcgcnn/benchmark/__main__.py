"""``python -m skcgcnn.benchmark``: the same as ``skcgcnn benchmark``."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
