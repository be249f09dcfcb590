"""``CrystalGraphFeaturizer``: pymatgen Structures -> crystal graphs, the matminer way."""

from __future__ import annotations

import math
import sys
import traceback
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs
from matminer.featurizers.base import BaseFeaturizer
from pymatgen.core import Molecule, Structure
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import Interval
from tqdm.auto import tqdm

from ._warnings import emit as emit_warnings
from ._warnings import recording
from .graph import CrystalGraph, _GraphInputs, build_graph

__all__ = ["CrystalGraphFeaturizer", "FeaturizationError", "StructureConversionWarning"]

#: Below this many entries per worker, parallel dispatch costs more than it saves.
_MIN_CHUNK = 64


class FeaturizationError(ValueError):
    """A structure could not be featurized; the message names its position and the reason.

    When the entries come from a pandas object (``featurize_dataframe``, an estimator given a
    Series), the message names the index label too: ``entry 3 (label 'mb-perovskites-00019')``.

    Attributes
    ----------
    position : int or None
        Position of the entry in the input (``None`` when not about one entry).

    Examples
    --------
    >>> try:
    ...     CrystalGraphFeaturizer().featurize_many(["Fe2O3"])
    ... except FeaturizationError as error:
    ...     print(str(error).split(":")[0], error.position)
    entry 0 0
    """

    position: int | None = None

    @classmethod
    def at(cls, position: int, message: str) -> FeaturizationError:
        """The error for the entry at ``position``; ``message`` contains ``entry {position}``."""
        error = cls(message)
        error.position = position
        return error

    def with_label(self, label: Any) -> FeaturizationError:
        """This error, with the entry's index label after its position in the message."""
        if self.position is None or _same_as_position(label, self.position):
            return self
        where = f"entry {self.position}"
        error = type(self)(str(self).replace(where, f"{where} (label {label!r})", 1))
        error.position = self.position
        return error


def _same_as_position(label: Any, position: int) -> bool:
    """Whether an index label says nothing more than the position (a default RangeIndex)."""
    return isinstance(label, (int, np.integer)) and int(label) == position


class StructureConversionWarning(UserWarning):
    """A non-periodic input (a pymatgen ``Molecule``, an ASE ``Atoms`` without periodic
    boundaries) was placed in a periodic box so that it can be featurized.

    Examples
    --------
    >>> import warnings
    >>> from pymatgen.core import Molecule
    >>> water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = CrystalGraphFeaturizer().featurize_many([water])
    >>> any(issubclass(w.category, StructureConversionWarning) for w in caught)
    True
    """


def _is_ase_atoms(entry: Any) -> bool:
    ase = sys.modules.get("ase")  # an Atoms object means ase is already imported
    return ase is not None and isinstance(entry, ase.Atoms)


def _is_structure_like(entry: Any) -> bool:
    """Whether :func:`_as_structure` accepts ``entry`` (a Structure, Molecule or ASE Atoms)."""
    return isinstance(entry, (Structure, Molecule)) or _is_ase_atoms(entry)


def _boxed(molecule: Molecule, radius: float) -> Structure:
    """The molecule in an orthorhombic box with ``radius + 1`` A of vacuum along each axis, so
    no periodic image of any atom lies within the neighbour radius."""
    extent = np.ptp(molecule.cart_coords, axis=0) if len(molecule) else np.zeros(3)
    a, b, c = (float(x) for x in extent + radius + 1.0)
    return molecule.get_boxed_structure(a, b, c, reorder=False)


def _unwrap_row(entry: Any) -> Any:
    """The sample of a one-element row (matminer passes ``[structure]``, a one-column frame
    ``array([structure])``); anything else as given."""
    if isinstance(entry, (tuple, list, np.ndarray)) and len(entry) == 1:
        return entry[0]
    return entry


def _as_structure(entry: Any, position: int, radius: float = 8.0) -> Structure:
    """Unwrap matminer's one-element rows and convert or check the type, naming the entry on
    failure. A ``Molecule`` (or an ASE ``Atoms`` without periodic boundaries) is boxed in
    vacuum; a periodic ASE ``Atoms`` is converted with pymatgen's ``AseAtomsAdaptor``."""
    entry = _unwrap_row(entry)
    if isinstance(entry, Structure):
        return entry
    if isinstance(entry, Molecule):
        return _boxed(entry, radius)
    if _is_ase_atoms(entry):
        from pymatgen.io.ase import AseAtomsAdaptor

        pbc = [bool(p) for p in entry.pbc]
        if not any(pbc):
            return _boxed(AseAtomsAdaptor.get_molecule(entry), radius)
        if abs(float(np.linalg.det(np.asarray(entry.cell)))) < 1e-6:
            raise FeaturizationError.at(
                position,
                f"entry {position}: ASE Atoms with pbc={pbc} has a cell of zero volume; give "
                "it a full 3-D cell (e.g. atoms.center(vacuum=10.0)) or set pbc=False to "
                "treat it as a molecule"
            )
        return AseAtomsAdaptor.get_structure(entry)
    raise FeaturizationError.at(
        position,
        f"entry {position}: expected a pymatgen Structure, got {type(entry).__name__}"
    )


def _warn_conversions(entries: Sequence[Any], positions: Sequence[int], radius: float) -> None:
    """One warning (in the calling process) for all entries that will be boxed in vacuum."""
    boxed = []
    for position, entry in zip(positions, entries):
        entry = _unwrap_row(entry)
        if isinstance(entry, Molecule) or (_is_ase_atoms(entry) and not any(entry.pbc)):
            boxed.append(position)
    if boxed:
        warnings.warn(
            f"{len(boxed)} non-periodic entries (first: entry {boxed[0]}) are molecules; each is "
            f"placed in a periodic box with {radius + 1:g} A of vacuum so that no periodic "
            "image lies within the neighbour radius",
            StructureConversionWarning,
            stacklevel=3,
        )


def _prepared(featurizer: CrystalGraphFeaturizer, entries: Sequence[Any],
              positions: Sequence[int]) -> list[Any]:
    """The entries as the arrays :func:`build_graph` reads, extracted in this process.

    A pymatgen Structure takes about 1 ms to pickle to a worker process and back into objects,
    twice as long as building its graph; these arrays take about 25 us. An entry that cannot be
    prepared is passed on unchanged, so the worker raises (or reports) the same error as the
    serial path.
    """
    prepared: list[Any] = []
    for position, entry in zip(positions, entries):
        try:
            prepared.append(_GraphInputs(_as_structure(entry, position, featurizer.radius)))
        except Exception:
            prepared.append(entry)
    return prepared


def _featurize_chunk(
    featurizer: CrystalGraphFeaturizer,
    entries: Sequence[Any],
    positions: Sequence[int],
    ignore_errors: bool,
    return_errors: bool,
) -> tuple[list[list[Any]], dict]:
    """Rows of the entries, and the warnings they raised (summarised, see ``_warnings``): a
    worker process does not forward warnings, so the caller re-emits them."""
    rows: list[list[Any]] = []
    summary: dict = {}
    for position, entry in zip(positions, entries):
        with recording(summary, position):
            rows.append(_featurize_entry(featurizer, entry, position, ignore_errors,
                                         return_errors))
    return rows, summary


def _featurize_entry(featurizer: CrystalGraphFeaturizer, entry: Any, position: int,
                     ignore_errors: bool, return_errors: bool) -> list[Any]:
    try:
        row: list[Any]
        if isinstance(entry, _GraphInputs):  # prepared by _prepared in the parent process
            row = [entry.build(featurizer.radius, featurizer.max_num_nbr)]
        else:
            structure = _as_structure(entry, position, featurizer.radius)
            row = list(featurizer.featurize(structure))
        if return_errors:
            row.append(math.nan)
    except Exception as exc:
        if not ignore_errors:
            if isinstance(exc, FeaturizationError):
                raise
            raise FeaturizationError.at(
                position,
                f"featurization failed for entry {position}: {type(exc).__name__}: {exc}"
            ) from exc
        row = [math.nan]
        if return_errors:
            row.append("".join(traceback.format_exception(exc)))
    return row


class CrystalGraphFeaturizer(BaseFeaturizer):
    """Turn pymatgen Structures into CGCNN crystal graphs.

    A matminer featurizer with one feature, ``crystal_graph``: a compact
    :class:`~skcgcnn.graph.CrystalGraph` holding each atom's ``max_num_nbr`` nearest neighbours
    within ``radius`` (built by :func:`~skcgcnn.graph.build_graph`). Works with matminer's
    ``featurize_dataframe`` and as the first step of a scikit-learn ``Pipeline``.

    Parameters
    ----------
    radius : float, default=8.0
        Neighbour search radius in Angstrom (the CGCNN paper's value).
    max_num_nbr : int, default=12
        Neighbours kept per atom.
    n_jobs : int or None, default=None
        Parallel workers for :meth:`featurize_many`, through joblib: ``None`` means 1 unless a
        ``joblib.parallel_config`` (e.g. a dask backend) says otherwise, ``-1`` means all cores.
        Safe inside ``GridSearchCV`` workers (no ``multiprocessing.Pool``).
    ignore_errors : bool, default=False
        Used by :meth:`transform` (and so by estimators and pipelines): if True, structures that
        cannot be featurized give NaN instead of raising; estimators then drop them from ``fit``
        with a warning and predict NaN for them.

    See Also
    --------
    skcgcnn.graph.build_graph : the graph construction for one structure.
    skcgcnn.CGCNNRegressor : accepts Structures or the graphs made here.

    Examples
    --------
    >>> import pandas as pd
    >>> from pymatgen.core import Lattice, Structure
    >>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> df = pd.DataFrame({"structure": [cscl, cscl.copy()]})
    >>> df = CrystalGraphFeaturizer().featurize_dataframe(df, "structure", pbar=False)
    >>> df["crystal_graph"].iloc[0]
    CrystalGraph(n_atoms=2, max_num_nbr=12, radius=8)
    """

    #: Checked by :meth:`featurize_many` (and so by ``transform`` and the estimators).
    _parameter_constraints: dict = {
        "radius": [Interval(Real, 0, None, closed="neither")],
        "max_num_nbr": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Integral, None],
        "ignore_errors": ["boolean"],
    }

    def __init__(
        self,
        radius: float = 8.0,
        max_num_nbr: int = 12,
        n_jobs: int | None = None,
        ignore_errors: bool = False,
    ) -> None:
        self.radius = radius
        self.max_num_nbr = max_num_nbr
        self.ignore_errors = ignore_errors
        # BaseFeaturizer.n_jobs is a read-only property backed by ``_n_jobs``.
        self.set_n_jobs(n_jobs)

    @property
    def n_jobs(self) -> int | None:
        """Parallel workers of :meth:`featurize_many`; settable, so ``set_params`` works."""
        return self._n_jobs

    @n_jobs.setter
    def n_jobs(self, value: int | None) -> None:
        self.set_n_jobs(value)

    def featurize(self, structure: Structure) -> list[CrystalGraph]:
        """Crystal graph of one structure, as a one-element feature list.

        A pymatgen ``Molecule`` or an ASE ``Atoms`` is converted first (molecules are boxed in
        vacuum, with a :class:`StructureConversionWarning`).
        """
        if not isinstance(structure, Structure):
            _warn_conversions([structure], [0], self.radius)
            structure = _as_structure(structure, 0, self.radius)
        return [build_graph(structure, radius=self.radius, max_num_nbr=self.max_num_nbr)]

    def feature_labels(self) -> list[str]:
        """``["crystal_graph"]``."""
        return ["crystal_graph"]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns of :meth:`transform`: ``["crystal_graph"]``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (one structure column in, one graph column out); accepted so that
            ``Pipeline`` and ``ColumnTransformer`` can chain feature names.

        Returns
        -------
        ndarray of str, shape (1,)
        """
        return np.asarray(self.feature_labels(), dtype=object)

    def citations(self) -> list[str]:
        """BibTeX of the CGCNN paper."""
        return [
            "@article{xie2018crystal,\n"
            "  title={Crystal Graph Convolutional Neural Networks for an Accurate and "
            "Interpretable Prediction of Material Properties},\n"
            "  author={Xie, Tian and Grossman, Jeffrey C.},\n"
            "  journal={Physical Review Letters},\n"
            "  volume={120},\n  number={14},\n  pages={145301},\n  year={2018},\n"
            "  doi={10.1103/PhysRevLett.120.145301}\n}"
        ]

    def implementors(self) -> list[str]:
        """Authors of this implementation."""
        return ["skcgcnn developers"]

    def featurize_many(
        self,
        entries: Sequence[Any] | np.ndarray | pd.Series | pd.DataFrame,
        ignore_errors: bool = False,
        return_errors: bool = False,
        pbar: bool = False,
        positions: Sequence[int] | None = None,
        labels: Sequence[Any] | None = None,
    ) -> list[list[Any]]:
        """Featurize many structures, in parallel through joblib when ``n_jobs`` allows.

        Parameters
        ----------
        entries : list-like of Structure
            Structures (or one-element rows of them, as matminer passes). A pymatgen
            ``Molecule`` or an ASE ``Atoms`` is converted (molecules are boxed in vacuum, with
            one :class:`StructureConversionWarning` for the call).
        ignore_errors : bool, default=False
            Give NaN for entries that fail instead of raising.
        return_errors : bool, default=False
            Append the error traceback (or NaN) to each row; needs ``ignore_errors=True``.
        pbar : bool, default=False
            Draw a tqdm progress bar (over the entries, or over the chunks of a parallel run),
            as matminer does.
        positions : sequence of int, optional
            The entries' positions in the caller's data, used in error messages (default:
            0, 1, 2...).
        labels : sequence, optional
            The entries' labels (e.g. a DataFrame's index), named in error messages after the
            position. By default, the index of ``entries`` when it is a pandas object.

        Returns
        -------
        list of list
            One row per entry: ``[CrystalGraph]`` (or ``[nan]``), plus the error column.

        Raises
        ------
        FeaturizationError
            When an entry is not a Structure or its graph cannot be built (``ignore_errors`` is
            False); the message names the entry's position and the reason.
        """
        self._validate_params()
        if return_errors and not ignore_errors:
            raise ValueError("return_errors=True requires ignore_errors=True")
        if _is_structure_like(entries) or isinstance(entries, CrystalGraph):
            raise ValueError(
                f"got a single {type(entries).__name__}; pass a sequence of them, e.g. "
                "[structure]"
            )
        if isinstance(entries, (pd.Series, pd.DataFrame)):
            if labels is None:
                labels = list(entries.index)
            entries = entries.to_numpy()
        entries = list(entries)
        if not entries:
            return []
        positions = list(range(len(entries)) if positions is None else positions)
        try:
            return self._featurize_many(entries, positions, ignore_errors, return_errors, pbar)
        except FeaturizationError as error:
            if labels is None or error.position is None:
                raise
            label = dict(zip(positions, labels)).get(error.position, error.position)
            raise error.with_label(label) from error.__cause__

    def _featurize_many(self, entries: list[Any], positions: list[int], ignore_errors: bool,
                        return_errors: bool, pbar: bool) -> list[list[Any]]:
        _warn_conversions(entries, positions, self.radius)
        n_jobs = effective_n_jobs(self.n_jobs)
        if n_jobs == 1 or len(entries) < 2 * _MIN_CHUNK:
            # the bar follows positions, which _featurize_chunk's zip reads to the end
            progress = tqdm(positions, desc=type(self).__name__, disable=not pbar)
            rows, summary = _featurize_chunk(self, entries, progress, ignore_errors,
                                             return_errors)
            emit_warnings([summary], stacklevel=3)
            return rows
        n_chunks = min(4 * n_jobs, max(1, len(entries) // _MIN_CHUNK))
        bounds = np.linspace(0, len(entries), n_chunks + 1).astype(int)
        # Send workers arrays, not Structures (unless featurize is overridden): pickling
        # dominates otherwise.
        prepare = type(self).featurize is CrystalGraphFeaturizer.featurize
        chunks = Parallel(n_jobs=self.n_jobs, return_as="generator")(
            delayed(_featurize_chunk)(
                self,
                _prepared(self, entries[a:b], positions[a:b]) if prepare else entries[a:b],
                positions[a:b],
                ignore_errors,
                return_errors,
            )
            for a, b in zip(bounds[:-1], bounds[1:])
        )
        chunks = list(tqdm(chunks, total=n_chunks, desc=type(self).__name__, disable=not pbar))
        emit_warnings([summary for _, summary in chunks], stacklevel=3)
        return [row for rows, _ in chunks for row in rows]

    def featurize_dataframe(self, df: pd.DataFrame, col_id: Any, *args: Any,
                            **kwargs: Any) -> pd.DataFrame:
        """matminer's ``featurize_dataframe``; an error names the row's index label too."""
        try:
            return super().featurize_dataframe(df, col_id, *args, **kwargs)
        except FeaturizationError as error:
            if error.position is None or not 0 <= error.position < len(df):
                raise
            raise error.with_label(df.index[error.position]) from error.__cause__

    def transform(self, X: Any) -> np.ndarray:
        """Featurize ``X`` (Structures) into an object array of shape (n_samples, 1).

        Failed entries raise, or become NaN when ``ignore_errors`` is True. After
        ``set_output(transform="pandas")`` the result is a DataFrame with one column,
        ``crystal_graph``, and the index of ``X`` when ``X`` is a pandas object.
        """
        return self.graphs(X)[:, None]

    def graphs(self, structures: Any) -> np.ndarray:
        """Featurize into a 1-D object array of :class:`~skcgcnn.graph.CrystalGraph`.

        Failed entries raise, or become NaN when ``ignore_errors`` is True. Unlike
        :meth:`transform`, the result is an array whatever ``set_output`` says.
        """
        rows = self.featurize_many(structures, ignore_errors=self.ignore_errors)
        out = np.empty(len(rows), dtype=object)
        out[:] = [row[0] for row in rows]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        # matminer's BaseFeaturizer lists TransformerMixin after BaseEstimator, whose tags win
        tags.transformer_tags = TransformerTags(preserves_dtype=[])
        return tags
