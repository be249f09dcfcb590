"""Content-keyed caching of work on pymatgen objects.

pymatgen fills caches on a :class:`~pymatgen.core.Lattice` (and its sites) the first time a
property is read (``inv_matrix``, ``volume``, LLL reductions...), so the bytes of a pickled
:class:`~pymatgen.core.Structure` change after it has been featurized once. ``joblib.Memory``,
and so scikit-learn's ``Pipeline(memory=...)``, key their caches on exactly those bytes: the
second ``fit`` on the same structures misses the cache and featurizes again.

:class:`StructureMemory` is a ``joblib.Memory`` whose keys see Structures, Molecules and
Lattices by their content (lattice matrix, periodicity, species and occupancies, fractional
coordinates, site properties and labels, charge and properties) instead of their pickled
bytes. Everything else is hashed as joblib does. :func:`content_hash` exposes the same key.

Examples
--------
>>> from pymatgen.core import Lattice, Structure
>>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
>>> key = content_hash(cscl)
>>> _ = cscl.lattice.inv_matrix, cscl.volume          # fills pymatgen's caches
>>> content_hash(cscl) == key == content_hash(cscl.copy())
True
"""

from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
from joblib import Memory
from joblib.func_inspect import filter_args
from joblib.hashing import Hasher, NumpyHasher
from pymatgen.core import IMolecule, IStructure, Lattice

__all__ = ["StructureMemory", "content_hash"]


def _by_content(kind: str, *content: Any) -> None:  # pragma: no cover - never called
    """Stand-in callable in the hashed pickle stream of a pymatgen object (never unpickled)."""


def _species(site: Any) -> tuple[tuple[str, str, Any, float], ...]:
    return tuple(
        (type(sp).__name__, str(sp), getattr(sp, "spin", None), float(occu))
        for sp, occu in site.species.items()
    )


def _lattice_content(lattice: Lattice) -> tuple[np.ndarray, tuple[bool, ...]]:
    return np.array(lattice.matrix, dtype=np.float64), tuple(bool(p) for p in lattice.pbc)


def _structure_content(structure: IStructure) -> tuple[Any, ...]:
    sites = structure.sites
    return (
        type(structure).__qualname__,
        *_lattice_content(structure.lattice),
        np.array([site.frac_coords for site in sites], dtype=np.float64).reshape(-1, 3),
        [_species(site) for site in sites],
        [site.properties for site in sites],
        [site.label for site in sites],
        structure.charge,
        structure.properties,
    )


def _content(obj: Any) -> tuple[Any, ...] | None:
    """What identifies a pymatgen Structure, Molecule or Lattice (None for other objects)."""
    if isinstance(obj, IStructure):
        return ("structure", *_structure_content(obj))
    if isinstance(obj, IMolecule):
        return ("molecule", obj.as_dict())
    if isinstance(obj, Lattice):
        return ("lattice", *_lattice_content(obj))
    return None


class _ContentHasher(NumpyHasher):
    """joblib's hasher, with pymatgen objects replaced by a digest of their content.

    Each object's content is hashed on its own without pickle's memo, and the digest is a new
    string at every occurrence, so an object met twice (or sharing a properties dict with
    another) hashes exactly as equal copies do.
    """

    def save(self, obj: Any) -> None:
        content = _content(obj)
        if content is not None:
            inner = _ContentHasher()
            inner.fast = True  # no memo: shared sub-objects are written out in full
            obj = (_by_content, inner.hash(content))
        super().save(obj)

    def save_global(self, obj: Any, name: str | None = None, **kwargs: Any) -> None:
        """Classes and functions by reference; by name when they cannot be found again, as in a
        worker process that received a class of the parent's ``__main__`` by value."""
        try:
            pickle._Pickler.save_global(self, obj, name=name)
        except pickle.PicklingError:
            qualname = name or getattr(obj, "__qualname__", None) or repr(obj)
            self.save((_by_content, "global", getattr(obj, "__module__", None), qualname))


# joblib's dispatch table points at its own save_global; use the one above
_ContentHasher.dispatch = {
    kind: _ContentHasher.save_global if method is Hasher.save_global else method
    for kind, method in NumpyHasher.dispatch.items()
}


def content_hash(obj: Any) -> str:
    """A hash of ``obj`` that sees pymatgen Structures, Molecules and Lattices by content.

    Parameters
    ----------
    obj : any picklable object
        Containers (lists, dicts, numpy object arrays, pandas Series and DataFrames, estimators)
        are walked as joblib does; pymatgen objects anywhere inside count by their content, so
        their internal caches do not change the hash.

    Returns
    -------
    str
        An md5 hex digest, as :func:`joblib.hash`.

    Examples
    --------
    >>> import pandas as pd
    >>> from pymatgen.core import Lattice, Structure
    >>> po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    >>> h = content_hash(pd.Series([po, po.copy()]))
    >>> po.lattice.get_lll_reduced_lattice() is not None  # mutates the lattice's caches
    True
    >>> content_hash(pd.Series([po, po])) == h
    True
    """
    return _ContentHasher().hash(obj)


def _call(key: str, func: Callable, args: tuple, kwargs: dict) -> Any:
    """What :class:`StructureMemory` memorizes: ``func(*args, **kwargs)`` under ``key``."""
    return func(*args, **kwargs)


class StructureMemory(Memory):
    """A :class:`joblib.Memory` that recognises pymatgen Structures by content.

    Use it wherever scikit-learn takes ``memory=`` (``Pipeline``, ``make_pipeline``) so that the
    featurization of the same structures is computed once, even though pymatgen mutates the
    structures' internal caches between calls (which defeats a plain ``memory="dir"``).

    Parameters
    ----------
    location : str, path or None
        Cache directory; None disables caching (functions are called directly).
    verbose : int, default=0
        joblib's verbosity (0: silent, as scikit-learn's ``memory="dir"``).
    **kwargs
        Other :class:`joblib.Memory` arguments (``backend``, ``mmap_mode``, ``compress``...).

    Notes
    -----
    The key of a call is :func:`content_hash` of the function's identity (module, name, code)
    and its arguments (``ignore`` removes arguments, as in joblib). The results live in one
    joblib cache folder, ``<location>/joblib/skcgcnn/cache/_call``; :meth:`clear` empties it.

    Examples
    --------
    >>> import tempfile
    >>> from pymatgen.core import Lattice, Structure
    >>> from sklearn.pipeline import make_pipeline
    >>> from skcgcnn import CGCNNRegressor, CrystalGraphFeaturizer
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.2, 4.4, 4.6)]
    >>> pipe = make_pipeline(
    ...     CrystalGraphFeaturizer(), CGCNNRegressor(max_epochs=2, verbose=0, random_state=0),
    ...     memory=StructureMemory(tempfile.mkdtemp()))
    >>> pipe.fit(X, [4.0, 4.2, 4.4, 4.6]).predict(X).shape   # a second fit reuses the graphs
    (4,)
    """

    def __init__(self, location: Any = None, verbose: int = 0, **kwargs: Any) -> None:
        super().__init__(location=location, verbose=verbose, **kwargs)

    def cache(
        self,
        func: Callable | None = None,
        ignore: list[str] | None = None,
        verbose: int | None = None,
        mmap_mode: Any = False,
        cache_validation_callback: Callable | None = None,
    ) -> Callable:
        """Memorize ``func`` with content keys (same arguments as :meth:`joblib.Memory.cache`).

        Returns
        -------
        callable
            Calls ``func`` on a cache miss and returns the stored result on a hit.
        """
        if func is None:  # used as a decorator with arguments
            return functools.partial(
                self.cache, ignore=ignore, verbose=verbose, mmap_mode=mmap_mode,
                cache_validation_callback=cache_validation_callback,
            )
        if self.store_backend is None:
            return func
        memorized = super().cache(
            _call, ignore=["func", "args", "kwargs"], verbose=verbose, mmap_mode=mmap_mode,
            cache_validation_callback=cache_validation_callback,
        )
        code = getattr(getattr(func, "__func__", func), "__code__", None)
        identity = (
            getattr(func, "__module__", None),
            getattr(func, "__qualname__", repr(func)),
            None if code is None else code.co_code,
            func.__self__ if inspect.ismethod(func) else None,  # a bound method's instance
        )

        @functools.wraps(func)
        def cached(*args: Any, **kwargs: Any) -> Any:
            arguments = filter_args(func, ignore or [], args, kwargs)
            return memorized(content_hash((identity, arguments)), func, args, kwargs)

        return cached
