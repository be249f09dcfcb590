"""Atom feature tables indexed by atomic number.

Every table used by :mod:`skcgcnn` is a float32 array of shape ``(101, d)``: row ``Z`` holds the
feature vector of the element with atomic number ``Z`` (1..100) and row 0 is an all-zero padding
row ("no element"). Rows of elements a table does not cover are NaN, so callers can find
unsupported elements with :func:`supported_atomic_numbers`.

The CGCNN encoding
------------------
:func:`cgcnn_encoding` computes the 92-wide one-hot element encoding of Xie & Grossman (2018) from
the element data shipped with pymatgen and matminer. It uses the same layout as the
``atom_init.json`` file distributed with the original implementation (txie-93/cgcnn): nine
segments, each one-hot, or all zero when the property is unknown for the element.

=====  =========================  ==================================================================
dims   property                   bin rule (index inside the segment)
=====  =========================  ==================================================================
0-18   group                      group 1..18; 0 = "no group" for La-Yb and Ac-Fm (Lu is group 3)
19-25  period                     period - 1 (lanthanides in period 6, actinides in period 7)
26-35  Pauling electronegativity  10 right-closed bins of width 0.35 over (0.5, 4.0]
36-45  covalent radius (pm)       floor((r - 25) / 22.5)
46-57  valence electrons          n - 1, with n counted as in ``atom_init.json`` (see below)
58-67  first ionisation energy    floor((ln(IE1 / eV) - 1.3) / 0.2)
68-77  electron affinity (eV)     floor((EA + 3) / 0.67)
78-81  block                      s, p, d, f (La and Ac count as f, Lu as d, He as s)
82-91  molar volume (cm3/mol)     floor((ln(V) - 1.5) / 0.28)
=====  =========================  ==================================================================

Indices outside a segment are clipped to its first or last bin. The electronegativity edges
are the float64 values ``0.5 + 0.35 * k``, as in the original file, so Mn (1.55) and Xe (2.6),
which sit on an edge, fall in the upper bin. Sources: group, period, Pauling
electronegativity (``Element.X``), first ionisation energy, electron affinity, block, ground-state
electron configuration and molar volume from :class:`pymatgen.core.Element`; covalent radius
from matminer's Magpie table (``MagpieData(impute_nan=False)``, property ``CovalentRadius``, the
Cordero et al. 2008 radii), as pymatgen's ``Element`` has no covalent radius. Valence electrons
follow the counting rule that produced the original file, applied to pymatgen's configurations:
s- and p-block elements count every electron of the outermost shell, d-block elements the
outermost s plus the d electrons one shell below, f-block elements the outermost s only. This gives
2 for La-Yb and Ac-Fm, 3 for Lu and 12 for Pd (whose outermost shell is n = 4).

Differences from the original ``atom_init.json``
------------------------------------------------
The original file was generated with an old release of the ``mendeleev`` package, so this table
is not identical to it: **79 of the 100 element rows differ** (measured with pymatgen 2026.10 and
matminer 0.10.1). The group, period, valence-electron, first-ionisation-energy and block segments
agree for all 100 elements; four segments differ because the underlying data differ:

* covalent radius, 57 elements: the original used Pyykko's single-bond radii, the Magpie table
  holds Cordero's, which are larger for most metals. One bin higher (two for Ti, La, W, Th) for
  Na, Sc-Mn, Co-Cu, Br, Y-Nb, Tc-Cd, Te, I, Xe, Ba, La-Lu, Hf-Ir, Fr, Ra, Ac-Pu; one lower for Si;
  Bk-Fm have no radius here (all-zero segment).
* electron affinity, 38 elements: pymatgen has values (often negative) where the original had
  none, for He, Ne, Mg, Ar, Mn, Zn, Kr, Cd, Pm, Sm, Gd, Ho, Er, Hg, Rn and Th-Fm, and values in a
  different bin for Be, N, Ga, In, Xe, Pr, Nd, Eu, Tb, Dy, Tl, Po.
* electronegativity, 20 elements: pymatgen has Pauling values for Kr, Pm, Eu, Tb, Yb, Rn and
  Am-Fm (missing in the original) and values in a different bin for Tc, Lu, W, Pt, Hg, Pb, Bi, U.
* molar volume, 20 elements: one bin lower for H, He, N, F, Ne, Cl, Ar, Kr, Xe; different bins
  for Tm, Ra, Np, Am, Cm; values where the original had none for Pm, Rn, Pu, Bk, Cf, Es.

The 21 identical rows are Li, B, C, O, Al, P, S, K, Ca, Fe, Ge, As, Se, Rb, Sr, Mo, Sn, Sb, Cs, Au
and At.

The pre-trained models of the original implementation were trained on the original file: load it
with :func:`load_atom_init` (or pass its path to :func:`resolve_atom_features`) to reproduce them.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CGCNN_SEGMENTS",
    "MAX_ATOMIC_NUMBER",
    "UnseenElementWarning",
    "cgcnn_encoding",
    "load_atom_init",
    "resolve_atom_features",
    "supported_atomic_numbers",
]

MAX_ATOMIC_NUMBER = 100
"""Largest atomic number covered by the tables (rows 0..100)."""

CGCNN_SEGMENTS: tuple[tuple[str, int, int], ...] = (
    ("group", 0, 19),
    ("period", 19, 26),
    ("electronegativity", 26, 36),
    ("covalent_radius", 36, 46),
    ("valence_electrons", 46, 58),
    ("first_ionization_energy", 58, 68),
    ("electron_affinity", 68, 78),
    ("block", 78, 82),
    ("atomic_volume", 82, 92),
)
"""``(name, start, stop)`` of each one-hot segment of :func:`cgcnn_encoding`."""



class UnseenElementWarning(UserWarning):
    """A prediction is asked for crystals with elements the model never saw in training.

    Raised once per call of ``predict`` / ``predict_proba`` / ``transform`` /
    ``atom_contributions``, listing the elements and how many samples contain them; the
    estimators' ``seen_elements_`` lists the elements of their training data.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", UnseenElementWarning)  # make them errors
    ...     issubclass(UnseenElementWarning, UserWarning)
    True
    """


_N_CGCNN = 92
_LANTHANIDES_NO_GROUP = range(57, 71)  # La..Yb; Lu (71) is group 3
_ACTINIDES_NO_GROUP = range(89, 101)  # Ac..Fm
_BLOCKS = "spdf"
_ACCEPTED = (
    "'cgcnn' (the built-in CGCNN encoding), 'magpie' (matminer's Magpie element properties), "
    "a path to an atom_init.json file, a dict mapping atomic number to feature vector, or a "
    f"2-D array with {MAX_ATOMIC_NUMBER + 1} rows (row Z = element Z, row 0 = padding)"
)


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, numbers.Real) and not math.isfinite(float(x)))


def _floor_bin(x: float | None, low: float, width: float, n_bins: int) -> int | None:
    """``floor((x - low) / width)`` clipped to ``0..n_bins - 1``; None when x is missing."""
    if _is_missing(x):
        return None
    index = math.floor((float(x) - low) / width)
    return min(max(index, 0), n_bins - 1)


def _right_closed_bin(x: float | None, low: float, width: float, n_bins: int) -> int | None:
    """Index of the bin ``(e_k, e_k+1]`` holding x, clipped; None when x is missing.

    The edges ``e_k = low + width * k`` are float64 values, as in the original file: for the
    electronegativity bins ``e_3 = 1.5499999999999998`` and ``e_6 = 2.5999999999999996``, so
    Mn (1.55) and Xe (2.6) fall in the upper bin while Gd (1.2 = e_2) falls in the lower one.
    """
    if _is_missing(x):
        return None
    inner_edges = low + width * np.arange(1, n_bins)
    return int(np.searchsorted(inner_edges, float(x), side="left"))


def _valence_electrons(element: Any, block: str) -> int:
    """Valence electron count with the rule that produced the original atom_init.json."""
    config = element.full_electronic_structure  # [(n, "s", count), ...]
    n_max = max(n for n, _, _ in config)
    occupation = {(n, orbital): count for n, orbital, count in config}
    if block in "sp":
        return sum(count for n, _, count in config if n == n_max)
    outer_s = occupation.get((n_max, "s"), 0)
    if block == "d":
        return outer_s + occupation.get((n_max - 1, "d"), 0)
    return outer_s  # f block


def _element_indices(z: int, covalent_radius_pm: float | None) -> list[int | None]:
    """Index inside each CGCNN segment for element z (None = unknown -> all-zero segment)."""
    from pymatgen.core import Element

    element = Element.from_Z(z)
    with warnings.catch_warnings():
        # pymatgen warns for every missing property; a missing value is encoded as all zeros
        warnings.simplefilter("ignore")
        group = 0 if z in _LANTHANIDES_NO_GROUP or z in _ACTINIDES_NO_GROUP else element.group
        block = "s" if element.symbol == "He" else element.block  # He: 1s2 (pymatgen says p)
        electronegativity = element.X
        ionization_energies = element.ionization_energies
        electron_affinity = element.data.get("Electron affinity")
        molar_volume = element.molar_volume
    first_ie = ionization_energies[0] if ionization_energies else None
    return [
        group,
        element.row - 1,
        _right_closed_bin(electronegativity, 0.5, 0.35, 10),
        _floor_bin(covalent_radius_pm, 25.0, 22.5, 10),
        min(_valence_electrons(element, block), 12) - 1,
        None if _is_missing(first_ie) else _floor_bin(math.log(first_ie), 1.3, 0.2, 10),
        _floor_bin(electron_affinity, -3.0, 0.67, 10),
        _BLOCKS.index(block),
        None if _is_missing(molar_volume) else _floor_bin(math.log(molar_volume), 1.5, 0.28, 10),
    ]


@functools.lru_cache(maxsize=1)
def _cgcnn_table() -> np.ndarray:
    """Compute the CGCNN table once; read-only, shared by every :func:`cgcnn_encoding` call."""
    from matminer.utils.data import MagpieData
    from pymatgen.core import Element

    radii = MagpieData(impute_nan=False)  # NaN (not the table mean) where a radius is unknown
    table = np.zeros((MAX_ATOMIC_NUMBER + 1, _N_CGCNN), dtype=np.float32)
    for z in range(1, MAX_ATOMIC_NUMBER + 1):
        radius = radii.get_elemental_property(Element.from_Z(z), "CovalentRadius")
        for (_, start, _), index in zip(CGCNN_SEGMENTS, _element_indices(z, radius), strict=True):
            if index is not None:
                table[z, start + index] = 1.0
    table.setflags(write=False)
    return table


def cgcnn_encoding() -> np.ndarray:
    """Return the CGCNN one-hot element encoding computed from pymatgen/matminer data.

    The layout (nine one-hot segments, 92 columns) is the one of the original CGCNN
    ``atom_init.json``; see the module docstring and :data:`CGCNN_SEGMENTS` for the bin rules,
    the data sources and the rows that differ from the original file. The table is computed once
    and cached (``functools.lru_cache``); each call returns a read-only view of it.

    Returns
    -------
    table : ndarray of shape (101, 92), dtype float32
        Read-only. Row ``Z`` encodes the element with atomic number ``Z``; row 0 is all zeros
        (padding). Every segment of a row holds a single 1, or only zeros where the element's
        property is unknown. Use ``table.copy()`` for a writable array.

    See Also
    --------
    load_atom_init : Load a user-supplied ``atom_init.json`` instead.
    resolve_atom_features : Turn any accepted feature specification into a table.

    Examples
    --------
    >>> from skcgcnn.elements import CGCNN_SEGMENTS, cgcnn_encoding
    >>> table = cgcnn_encoding()
    >>> table.shape, table.dtype
    ((101, 92), dtype('float32'))
    >>> int(table[0].sum())
    0
    >>> group = dict((name, (start, stop)) for name, start, stop in CGCNN_SEGMENTS)["group"]
    >>> int(table[11, group[0]:group[1]].argmax())  # sodium is in group 1
    1
    """
    # a view of the cached array: its base is read-only, so callers cannot re-enable writing
    return _cgcnn_table().view()


def _atomic_number_key(key: Any) -> int:
    """Validate one atom_init key (int or decimal string) and return the atomic number."""
    is_integer = isinstance(key, numbers.Integral) and not isinstance(key, bool)
    is_decimal = isinstance(key, str) and re.fullmatch(r"\s*[0-9]+\s*", key) is not None
    z = int(key) if is_integer or is_decimal else None
    if z is None or not 1 <= z <= MAX_ATOMIC_NUMBER:
        raise ValueError(
            f"atom_init key {key!r} is not an atomic number between 1 and {MAX_ATOMIC_NUMBER}"
        )
    return z


def _feature_vector(key: Any, value: Any) -> np.ndarray:
    """Validate one atom_init value and return it as a 1-D float64 array."""
    if isinstance(value, str | bytes) or not hasattr(value, "__len__"):
        raise ValueError(
            f"atom_init value for key {key!r} must be a list of numbers, got {type(value).__name__}"
        )
    if any(isinstance(v, str | bytes | bool) or v is None for v in value):
        raise ValueError(f"atom_init value for key {key!r} contains non-numeric entries")
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"atom_init value for key {key!r} contains non-numeric entries") from exc
    if vector.ndim != 1 or vector.size == 0:
        raise ValueError(
            f"atom_init value for key {key!r} must be a non-empty flat list of numbers, "
            f"got shape {vector.shape}"
        )
    if not np.all(np.isfinite(vector) & (np.abs(vector) <= np.finfo(np.float32).max)):
        raise ValueError(
            f"atom_init value for key {key!r} contains NaN, infinite or "
            "out-of-float32-range entries"
        )
    return vector


def _read_atom_init_file(path: Path) -> dict[Any, Any]:
    """Read an atom_init.json file; ValueError naming the path if it is missing or not JSON."""
    if not path.is_file():
        raise ValueError(f"atom_init file not found: '{path}'")
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"atom_init file '{path}' is not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        return data
    raise ValueError(
        f"atom_init file '{path}' must hold a JSON object mapping atomic numbers to vectors, "
        f"got a JSON {type(data).__name__}"
    )


def load_atom_init(source: str | os.PathLike[str] | Mapping[Any, Any]) -> np.ndarray:
    """Load an ``atom_init.json`` table (the original CGCNN format) into a feature table.

    Parameters
    ----------
    source : str, path-like or mapping
        Path to a JSON file whose object maps atomic numbers (``"1"``..``"100"``) to feature
        vectors, as shipped with the original CGCNN code, or the equivalent mapping (keys may be
        ``int`` or decimal ``str``). Not every element needs to be present.

    Returns
    -------
    table : ndarray of shape (101, d), dtype float32
        Row ``Z`` holds the vector given for atomic number ``Z``; row 0 is zeros (padding); rows of
        elements absent from ``source`` are NaN (see :func:`supported_atomic_numbers`).

    Raises
    ------
    ValueError
        If the file does not exist or is not JSON, if the JSON is not an object or the mapping is
        empty, if a key is not an atomic number in 1..100 (or appears twice, e.g. as ``1`` and
        ``"1"``), or if a vector is empty, non-numeric, not finite, or of a different length than
        the others. The message names the path or key.
    TypeError
        If ``source`` is neither a path nor a mapping.

    See Also
    --------
    cgcnn_encoding : The built-in encoding with the same layout.

    Examples
    --------
    >>> import numpy as np
    >>> from skcgcnn.elements import load_atom_init, supported_atomic_numbers
    >>> table = load_atom_init({"1": [1, 0, 0], 8: [0, 1, 0]})
    >>> table.shape, table.dtype
    ((101, 3), dtype('float32'))
    >>> table[8].tolist()
    [0.0, 1.0, 0.0]
    >>> bool(np.isnan(table[26]).all())  # iron was not given
    True
    >>> supported_atomic_numbers(table).tolist()
    [1, 8]
    """
    if isinstance(source, Mapping):
        data: Any = source
        origin = "atom_init mapping"
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        data = _read_atom_init_file(path)
        origin = f"atom_init file '{path}'"
    else:
        raise TypeError(
            "load_atom_init expects a path to an atom_init.json file or a mapping from atomic "
            f"number to feature vector, got {type(source).__name__}"
        )
    if len(data) == 0:
        raise ValueError(f"{origin} is empty")

    rows: dict[int, np.ndarray] = {}
    first_key: Any = None
    n_features = 0
    for key, value in data.items():
        z = _atomic_number_key(key)
        if z in rows:
            raise ValueError(f"atom_init key {key!r} repeats atomic number {z}")
        vector = _feature_vector(key, value)
        if first_key is None:
            first_key, n_features = key, vector.size
        elif vector.size != n_features:
            raise ValueError(
                f"atom_init value for key {key!r} has length {vector.size}; expected "
                f"{n_features} (the length for key {first_key!r})"
            )
        rows[z] = vector

    table = np.full((MAX_ATOMIC_NUMBER + 1, n_features), np.nan, dtype=np.float32)
    table[0] = 0.0
    for z, vector in rows.items():
        table[z] = vector
    return table


def resolve_atom_features(spec: Any) -> np.ndarray:
    """Turn an atom feature specification into a ``(101, d)`` float32 table.

    Parameters
    ----------
    spec : {"cgcnn", "magpie"}, str, path-like, mapping or array-like
        * ``"cgcnn"``: the built-in encoding, :func:`cgcnn_encoding`;
        * ``"magpie"``: matminer's 22 Magpie element properties, z-scored, (101, 22);
        * a path to an ``atom_init.json`` file, or a mapping from atomic number to vector:
          :func:`load_atom_init`;
        * a 2-D array-like with 101 rows (row ``Z`` = element ``Z``, row 0 = padding, NaN rows =
          unsupported elements), used as given.

    Returns
    -------
    table : ndarray of shape (101, d), dtype float32
        For ``"cgcnn"``/``"magpie"`` a shared read-only cached table; otherwise a new array.

    Raises
    ------
    ValueError
        If ``spec`` is none of the accepted forms (the message lists them), or if the file,
        mapping or array is invalid (an array must be numeric, of shape (101, d), and have a
        finite row for at least one element).

    Examples
    --------
    >>> import numpy as np
    >>> from skcgcnn.elements import resolve_atom_features
    >>> resolve_atom_features("cgcnn").shape
    (101, 92)
    >>> resolve_atom_features(np.eye(101)[:, :4]).shape
    (101, 4)
    >>> resolve_atom_features({26: [0.5, 1.5]})[26].tolist()
    [0.5, 1.5]
    """
    if isinstance(spec, str):
        if spec.strip().lower() == "cgcnn":
            return cgcnn_encoding()
        if spec.strip().lower() == "magpie":
            from ._magpie import magpie_encoding

            return magpie_encoding()
        looks_like_path = (
            os.sep in spec or "/" in spec or Path(spec).suffix != "" or Path(spec).exists()
        )
        if not looks_like_path:
            raise ValueError(f"unknown atom feature specification {spec!r}; expected {_ACCEPTED}")
        return load_atom_init(spec)
    if isinstance(spec, os.PathLike | Mapping):
        return load_atom_init(spec)
    if spec is None or isinstance(spec, bytes | numbers.Number):
        raise ValueError(f"invalid atom feature specification {spec!r}; expected {_ACCEPTED}")
    try:
        array = np.asarray(spec)
    except (TypeError, ValueError) as exc:  # e.g. ragged nested lists
        raise ValueError(f"invalid atom feature table ({exc}); expected {_ACCEPTED}") from exc
    if array.dtype.kind not in "biuf":
        raise ValueError(
            f"atom feature table must be numeric, got dtype {array.dtype}; expected {_ACCEPTED}"
        )
    if array.ndim != 2 or array.shape[0] != MAX_ATOMIC_NUMBER + 1 or array.shape[1] == 0:
        raise ValueError(
            f"atom feature table must have shape ({MAX_ATOMIC_NUMBER + 1}, d) with d >= 1, got "
            f"{array.shape}; expected {_ACCEPTED}"
        )
    table = array.astype(np.float32)  # always a new array
    if supported_atomic_numbers(table).size == 0:
        raise ValueError("atom feature table has no finite row for any element 1..100")
    return table


def supported_atomic_numbers(table: Any) -> np.ndarray:
    """Return the atomic numbers whose rows in ``table`` are finite.

    Parameters
    ----------
    table : array-like of shape (101, d)
        An atom feature table such as :func:`cgcnn_encoding` or :func:`load_atom_init` returns.

    Returns
    -------
    atomic_numbers : ndarray of int64, shape (n_supported,)
        Sorted atomic numbers ``Z >= 1`` whose feature row contains no NaN or infinity. Row 0
        (padding) is never included.

    Raises
    ------
    ValueError
        If ``table`` is not 2-D with 101 rows.

    Examples
    --------
    >>> from skcgcnn.elements import cgcnn_encoding, load_atom_init, supported_atomic_numbers
    >>> len(supported_atomic_numbers(cgcnn_encoding()))
    100
    >>> supported_atomic_numbers(load_atom_init({"3": [1.0], "1": [2.0]})).tolist()
    [1, 3]
    """
    array = np.asarray(table, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != MAX_ATOMIC_NUMBER + 1:
        raise ValueError(
            f"atom feature table must have shape ({MAX_ATOMIC_NUMBER + 1}, d), got {array.shape}"
        )
    finite = np.isfinite(array).all(axis=1)
    finite[0] = False
    return np.flatnonzero(finite).astype(np.int64)
