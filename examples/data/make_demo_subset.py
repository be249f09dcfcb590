"""Regenerate ``matbench_perovskites_demo.json.gz`` from the full Matbench perovskites file.

Usage::

    python examples/data/make_demo_subset.py path/to/matbench_perovskites.json.gz

The subset is ``DataFrame.sample(n=3000, random_state=0)`` of the full data, sorted by its
Matbench index (``mb-perovskites-NNNNN``), written with
``matminer.utils.io.store_dataframe_as_json(..., compression="gz")`` next to this script (or to
``--output``). The content is deterministic; the gzip bytes differ between runs only by the
gzip header's timestamp.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from matminer.utils.io import load_dataframe_from_json, store_dataframe_as_json

N_ROWS = 3000
SEED = 0
EXPECTED_ROWS = 18928
MAX_BYTES = 2 * 1024 * 1024
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "matbench_perovskites_demo.json.gz"


def make_subset(source: Path, output: Path, n: int = N_ROWS, seed: int = SEED) -> Path:
    """Write an ``n``-row random subset of ``source`` to ``output`` and return its path."""
    if not source.is_file():
        raise FileNotFoundError(f"{str(source)!r} not found: pass matbench_perovskites.json.gz.")
    df = load_dataframe_from_json(str(source), pbar=False)
    if list(df.columns) != ["structure", "e_form"] or len(df) != EXPECTED_ROWS:
        raise ValueError(
            f"{str(source)!r} does not look like matbench_perovskites (expected {EXPECTED_ROWS} "
            f"rows with columns ['structure', 'e_form']; got {len(df)} rows, "
            f"{list(df.columns)})."
        )
    subset = df.sample(n=n, random_state=seed).sort_index()
    output.parent.mkdir(parents=True, exist_ok=True)
    store_dataframe_as_json(subset, str(output), compression="gz", pbar=False)
    size = output.stat().st_size
    print(f"wrote {output} ({len(subset)} rows, {size / 1e6:.2f} MB)")
    if size > MAX_BYTES:
        raise SystemExit(f"{output} is {size} bytes, over the {MAX_BYTES}-byte budget.")
    return output


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="path of matbench_perovskites.json.gz")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("-n", type=int, default=N_ROWS, help="number of rows (default 3000)")
    parser.add_argument("--seed", type=int, default=SEED, help="random_state (default 0)")
    args = parser.parse_args(argv)
    make_subset(args.source, args.output, n=args.n, seed=args.seed)


if __name__ == "__main__":
    main()
