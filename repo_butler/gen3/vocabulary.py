"""Gen3's dimension vocabulary, as a table: which keys exist, what each element's records imply.

A Gen3 export writes each dataset's *required* dimensions only (a calexp: ``instrument``,
``detector``, ``visit``); the others follow from dimension records (the ``visit`` record gives
``physical_filter`` and ``day_obs``, the ``physical_filter`` record gives ``band``).
:class:`Gen3Records` expands a data ID with them, and gives a patch's ``cell_x, cell_y`` (a Gen3
patch is an integer index; ``x,y`` is how a repository here names it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repo_butler.dimensions import Dimension, DimensionUniverse

__all__ = ["GEN3_ELEMENTS", "GEN3_UNIVERSE", "Gen3Element", "Gen3Records"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gen3Element:
    """A Gen3 dimension element: the keys naming one record and the keys its record implies.

    ``parents`` are the dimensions that qualify the key (``instrument`` for ``visit``);
    ``key`` the record field holding the element's own value (``id`` or ``name``).
    """

    name: str
    type: str
    parents: tuple[str, ...] = ()
    key: str = "id"
    implies: tuple[str, ...] = ()


#: The Gen3 dimensions an imported dataset may be identified by (daf_butler's universe 6/7).
GEN3_ELEMENTS: Mapping[str, Gen3Element] = {
    e.name: e
    for e in (
        Gen3Element("instrument", "str", key="name"),
        Gen3Element("band", "str", key="name"),
        Gen3Element("physical_filter", "str", ("instrument",), "name", ("band",)),
        Gen3Element("detector", "int", ("instrument",)),
        Gen3Element("day_obs", "int", ("instrument",)),
        Gen3Element("group", "str", ("instrument",), "name"),
        Gen3Element(
            "exposure", "int", ("instrument",), implies=("physical_filter", "day_obs", "group")
        ),
        Gen3Element("visit", "int", ("instrument",), implies=("physical_filter", "day_obs")),
        Gen3Element("visit_system", "int", ("instrument",)),
        Gen3Element("skymap", "str", key="name"),
        Gen3Element("tract", "int", ("skymap",)),
        Gen3Element("patch", "int", ("skymap", "tract")),
    )
}

#: The Gen3 keys as a :class:`DimensionUniverse`, so a ``where`` on an export is written and
#: checked in Gen3's own words (``detector IN (16..24) AND band = 'r'``).
GEN3_UNIVERSE = DimensionUniverse(
    Dimension(e.name, "int" if e.type == "int" else "str") for e in GEN3_ELEMENTS.values()
)


class Gen3Records:
    """An export's dimension records, indexed to expand data IDs.

    Parameters
    ----------
    records : Mapping
        Element name to its records, as :class:`~repo_butler.gen3.export.Gen3Export` holds them.
    """

    def __init__(self, records: Mapping[str, tuple[Mapping[str, Any], ...]]) -> None:
        self._index: dict[str, dict[tuple[Any, ...], Mapping[str, Any]]] = {}
        for name, element in GEN3_ELEMENTS.items():
            table: dict[tuple[Any, ...], Mapping[str, Any]] = {}
            for record in records.get(name, ()):
                try:
                    table[(*(record[p] for p in element.parents), record[element.key])] = record
                except KeyError:
                    continue  # an older universe's record without these fields: unused
            self._index[name] = table

    def record(self, element: str, data_id: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The record of ``element`` that ``data_id`` names, if the export has it."""
        spec = GEN3_ELEMENTS.get(element)
        if spec is None or element not in data_id:
            return None
        try:
            key = (*(data_id[p] for p in spec.parents), data_id[element])
        except KeyError:
            return None
        return self._index[element].get(key)

    def expand(self, data_id: Mapping[str, Any]) -> dict[str, Any]:
        """``data_id`` plus every key its records imply (repeatedly: visit → filter → band).

        A value the export gives and a record contradicts keeps the export's value (logged).
        """
        out = dict(data_id)
        pending = list(out)
        while pending:
            element = pending.pop()
            spec = GEN3_ELEMENTS.get(element)
            record = self.record(element, out) if spec else None
            if spec is None or record is None:
                continue
            for key in spec.implies:
                value = record.get(key)
                if value is None:
                    continue
                if key not in out:
                    out[key] = value
                    pending.append(key)
                elif out[key] != value:
                    logger.warning(
                        "data ID %s gives %s=%r but the %s record says %r; keeping %r",
                        dict(data_id), key, out[key], element, value, out[key],
                    )  # fmt: skip
        return out

    def patch_xy(self, data_id: Mapping[str, Any]) -> str | None:
        """A patch's ``"x,y"`` from its record's ``cell_x``/``cell_y``; ``None`` without one."""
        record = self.record("patch", data_id)
        if record is None or record.get("cell_x") is None or record.get("cell_y") is None:
            return None
        return f"{int(record['cell_x'])},{int(record['cell_y'])}"
