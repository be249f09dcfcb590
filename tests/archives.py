"""Small CIF archives shaped like ``matbench_mp_gap_cifs.tar.gz`` (importable by tests)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter


def small_structures(n: int, seed: int = 0) -> list[Structure]:
    """``n`` two-atom cubic cells of four compositions, lattice constants 3-5.5 Å."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = 3.0 + rng.random() * 2.5
        species = [["Na", "Cl"], ["Fe", "Fe"], ["Cs", "Br"], ["Mg", "O"]][i % 4]
        frac = [[0, 0, 0], [0.5, 0.5, 0.5 + 0.05 * rng.random()]]
        out.append(Structure(Lattice.cubic(a), species, frac))
    return out


def cif_tar(path: Path, structures: list[Structure], targets: list[float],
            broken: tuple[int, ...] = (), ids: list[str] | None = None,
            target_name: str = "gap") -> Path:
    """A tar archive like matbench_mp_gap_cifs: a CSV with a ``cif_file`` column, one CIF per
    row (compression from the file name: ``.tar.gz``, ``.tar.xz``, ...). Rows in ``broken``
    get an unparsable CIF."""
    ids = ids or [f"id-{i:04d}" for i in range(len(structures))]
    rows = [f"index,cif_file,{target_name}"]
    mode = {".gz": "w:gz", ".xz": "w:xz", ".bz2": "w:bz2"}.get(path.suffix, "w")
    with tarfile.open(path, mode) as tar:
        for i, (s, y) in enumerate(zip(structures, targets)):
            text = "data_broken\n_cell_length_a 1\n" if i in broken else str(CifWriter(s))
            data = text.encode()
            info = tarfile.TarInfo(f"set/cif/c{i:04d}.cif")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            rows.append(f"{ids[i]},cif/c{i:04d}.cif,{y}")
        data = ("\n".join(rows) + "\n").encode()
        info = tarfile.TarInfo("set/table.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path
