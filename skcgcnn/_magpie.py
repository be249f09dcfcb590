"""The ``"magpie"`` atom feature table: matminer's Magpie element properties, z-scored.

The 22 elemental properties of matminer's ``ElementProperty.from_preset("magpie")`` (Ward et
al., npj Comput. Mater. 2, 16028, 2016): atomic number, Mendeleev number, weight, melting
point, group, period, covalent radius, electronegativity, valence electrons by shell and
unfilled states, ground-state volume, band gap, magnetic moment and space group. Each column
is z-scored over elements 1..100, so that every input of the network's embedding layer has the
same scale; row 0 (the padding of disordered sites) is zeros. They are the element data the
classical Magpie baselines are built on: a dense, continuous alternative to CGCNN's one-hot
encoding.
"""

from __future__ import annotations

import functools

import numpy as np

#: elements 1..100, as ``skcgcnn.elements.MAX_ATOMIC_NUMBER`` (not imported: elements imports
#: this module)
MAX_ATOMIC_NUMBER = 100

__all__ = ["magpie_encoding"]


@functools.lru_cache(maxsize=1)
def _magpie_table() -> np.ndarray:
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Element

    magpie = ElementProperty.from_preset("magpie")
    values = np.array([[magpie.data_source.get_elemental_property(Element.from_Z(z), name)
                        for name in magpie.features]
                       for z in range(1, MAX_ATOMIC_NUMBER + 1)], dtype=float)
    if not np.isfinite(values).all():  # matminer's data changed: refuse, never guess
        raise ValueError("matminer's Magpie data has missing values for elements 1..100")
    values = (values - values.mean(axis=0)) / values.std(axis=0)
    table = np.vstack([np.zeros((1, values.shape[1])), values]).astype(np.float32)
    table.setflags(write=False)
    return table


def magpie_encoding() -> np.ndarray:
    """Return the ``"magpie"`` atom feature table (computed once, read-only).

    Returns
    -------
    table : ndarray of shape (101, 22), dtype float32
        Row ``Z`` holds the z-scored Magpie properties of element ``Z``; row 0 is zeros.

    Examples
    --------
    >>> from skcgcnn.elements import resolve_atom_features
    >>> table = resolve_atom_features("magpie")
    >>> table.shape, bool(abs(table[1:].mean(axis=0)).max() < 1e-5)
    ((101, 22), True)
    """
    return _magpie_table()
