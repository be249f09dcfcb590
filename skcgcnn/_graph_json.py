"""JSON form of :class:`~skcgcnn.graph.CrystalGraph` (private): what ``as_dict``/``from_dict`` do.

The arrays are stored as base64 of their little-endian bytes with dtype and shape, under the
``@module``/``@class`` keys of monty's MSONable convention and a ``format_version``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # graph imports this module
    from .graph import CrystalGraph

#: Version of the dict layout written by :meth:`CrystalGraph.as_dict`; ``from_dict`` reads it
#: and refuses newer ones (written by a later skcgcnn).
GRAPH_FORMAT_VERSION = 1
#: Arrays of a serialised graph, with the dtype each is stored and restored as.
_ARRAY_DTYPES = {
    "atomic_numbers": np.int16,
    "neighbor_indices": np.int32,
    "distances": np.float32,
    "occupancies": np.float32,
}



def graph_as_dict(self: CrystalGraph) -> dict[str, Any]:
    """See :meth:`CrystalGraph.as_dict`."""
    arrays = {"atomic_numbers": self.atomic_numbers, "neighbor_indices":
              self.neighbor_indices, "distances": self.distances}
    if self.occupancies is not None:
        arrays["occupancies"] = self.occupancies
    out: dict[str, Any] = {
        "@module": type(self).__module__,
        "@class": type(self).__name__,
        "format_version": GRAPH_FORMAT_VERSION,
        "radius": self.radius,
    }
    for name, array in arrays.items():
        little_endian = np.dtype(_ARRAY_DTYPES[name]).newbyteorder("<")
        data = np.ascontiguousarray(array, dtype=little_endian)
        out[name] = {
            "dtype": data.dtype.str,
            "shape": list(data.shape),
            "base64": base64.b64encode(data.tobytes()).decode("ascii"),
        }
    return out


def graph_from_dict(cls: type[CrystalGraph], d: dict[str, Any]) -> CrystalGraph:
    """See :meth:`CrystalGraph.from_dict`."""
    version = d.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= GRAPH_FORMAT_VERSION:
        raise ValueError(
            f"CrystalGraph dict has format_version {version!r}; this skcgcnn reads versions "
            f"1..{GRAPH_FORMAT_VERSION} (upgrade skcgcnn to read newer files)"
        )
    arrays = {}
    for name, dtype in _ARRAY_DTYPES.items():
        entry = d.get(name)
        if entry is None:
            if name == "occupancies":
                arrays[name] = None
                continue
            raise ValueError(f"CrystalGraph dict lacks the array {name!r}")
        try:
            raw = np.frombuffer(base64.b64decode(entry["base64"]),
                                dtype=np.dtype(entry["dtype"]))
            arrays[name] = raw.reshape(tuple(entry["shape"])).astype(dtype)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"CrystalGraph dict has an unreadable {name!r}: {exc}") from exc
    n_atoms = len(arrays["neighbor_indices"])
    shapes = {name: a.shape for name, a in arrays.items() if a is not None}
    if (
        arrays["neighbor_indices"].ndim != 2
        or shapes["distances"] != shapes["neighbor_indices"]
        or shapes["atomic_numbers"][:1] != (n_atoms,)
        or (arrays["occupancies"] is not None
            and shapes["occupancies"] != shapes["atomic_numbers"])
    ):
        raise ValueError(f"CrystalGraph dict has inconsistent array shapes: {shapes}")
    try:
        radius = float(d["radius"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"CrystalGraph dict has no usable 'radius': {exc!r}") from exc
    return cls(
        arrays["atomic_numbers"],
        arrays["neighbor_indices"],
        arrays["distances"],
        radius,
        arrays["occupancies"],
    )
