"""One configuration per run: the MakeWarp side of LSST Gen2's ``makeCoaddTempExp_config`` check.

A run records the configuration MakeWarp first wrote it with (:mod:`repo_butler.run_configs`,
``[rerun/NAME/]_config/makeWarp.json``). A later MakeWarp into the run with another configuration
is refused before any work or write (:class:`~warping.errors.RunConfigMismatchError`, listing
each differing field with its recorded and new values) unless ``clobber_config`` replaces the
record. ``--reuse`` keeps an existing warp only if its own provenance records the same
configuration (:func:`made_with`).

What "the same" means (:func:`differences`):

* configurations are compared *normalised*: every field this release knows, with its default
  where a record lacks it, so a record written before a field existed matches a configuration
  holding that field's default;
* a field a record holds but this release does not know counts as a difference;
* :data:`NOT_COMPARED` fields cannot change outputs and are not compared (none today: the number
  of jobs, the executor, the Dask scheduler and dashboard, progress output and ``--reuse`` are
  run arguments, not configuration);
* :data:`ACTIVE_WHEN` fields only act when a switch is on (the PSF-matching and model-PSF
  settings with ``makePsfMatched``, the external calibration names with their ``doApply*``, the
  masked-fraction settings with ``doWarpMaskedFraction``, the noise settings with
  ``numberOfNoiseRealizations``): when
  the switch is off in both configurations they are not compared;
* per output (provenance, and the outputs of a run written before runs recorded their
  configuration), a field in :data:`RESOLVED_PER_OUTPUT` left automatic in the new configuration
  matches any recorded value: the task writes the value it resolved (the patch's model PSF FWHM
  and kernel size, the lossy dither seed) into each output's provenance.

A run written by a release that did not record configurations has no record: its existing
warps' provenance is compared instead (the run is refused if one differs), and the configuration
is recorded on this run's first write.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repo_butler.errors import Remedy
from warping.errors import RunConfigMismatchError
from warping.task.config import MakeWarpConfig, config_to_dict

if TYPE_CHECKING:
    from repo_butler import Butler, DataId

__all__ = [
    "ACTIVE_WHEN",
    "NOT_COMPARED",
    "RESOLVED_PER_OUTPUT",
    "TASK_LABEL",
    "ConfigDifference",
    "RunConfigCheck",
    "check_run_config",
    "differences",
    "made_with",
    "normalised",
    "record_run_config",
]

logger = logging.getLogger(__name__)

#: The label of MakeWarp's records (the provenance ``task`` of its warps too).
TASK_LABEL = "makeWarp"
#: Fields (paths as in ``--show-config``) that cannot change outputs: not compared.
NOT_COMPARED: frozenset[str] = frozenset()
#: Fields the task resolves per output when automatic (this value) and records resolved.
RESOLVED_PER_OUTPUT: Mapping[str, Any] = {
    "modelPsf.defaultFwhm": None,
    "warpAndPsfMatch.psfMatch.kernel['AL'].kernelSize": None,
    "outputCompression.ditherSeed": 0,
}
#: Fields that only act when a switch is on: not compared when it is off on both sides (a run of
#: direct warps only does not depend on the PSF-matching settings).
ACTIVE_WHEN: Mapping[str, str] = {
    "warpAndPsfMatch.psfMatch": "makePsfMatched",
    "modelPsf": "makePsfMatched",
    "externalPhotoCalibName": "doApplyExternalPhotoCalib",
    "externalSkyWcsName": "doApplyExternalSkyWcs",
    "maskedFractionWarper": "doWarpMaskedFraction",
    "maskedFractionMaskPlanes": "doWarpMaskedFraction",
    "seedOffset": "numberOfNoiseRealizations",
    "useMedianVariance": "numberOfNoiseRealizations",
}
_SHOWN = 6  # differences listed in a message
_UNKNOWN = object()


@dataclass(frozen=True)
class ConfigDifference:
    """One field whose recorded value differs from the new one."""

    field: str
    recorded: Any
    new: Any

    def __str__(self) -> str:
        def show(value: Any) -> str:
            if value is not _UNKNOWN:
                return repr(value)
            # a dict entry (select.minNPsfStarPerBand['z']) one side does not set
            return "(no entry)" if self.field.endswith("]") else "(not in this release)"

        return f"{self.field}: recorded {show(self.recorded)}, now {show(self.new)}"


def _flatten(doc: Mapping[str, Any], template: Any, prefix: str, out: dict[str, Any]) -> None:
    mapping_field = isinstance(template, Mapping)
    for key, value in doc.items():
        if mapping_field:
            path, sub = f"{prefix}[{key!r}]", template.get(key)
        else:
            path = f"{prefix}.{key}" if prefix else str(key)
            sub = getattr(template, str(key), None) if dataclasses.is_dataclass(template) else None
        nested = sub is None or dataclasses.is_dataclass(sub) or isinstance(sub, Mapping)
        if isinstance(value, Mapping) and nested:
            _flatten(value, sub, path, out)
        else:
            out[path] = json.loads(json.dumps(value, default=str))  # tuples -> lists


def normalised(config: MakeWarpConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``{field path: value}`` of a configuration (or its recorded dict), every field this
    release knows filled with its default, :data:`NOT_COMPARED` fields left out."""
    default = MakeWarpConfig()
    flat: dict[str, Any] = {}
    _flatten(config_to_dict(default), default, "", flat)
    doc = config_to_dict(config) if isinstance(config, MakeWarpConfig) else config
    _flatten(doc, default, "", flat)
    return {k: v for k, v in flat.items() if k not in NOT_COMPARED}


def differences(
    recorded: Mapping[str, Any], new: Mapping[str, Any], *, per_output: bool = False
) -> list[ConfigDifference]:
    """The fields in which two :func:`normalised` configurations differ, in field order.

    With ``per_output`` (``recorded`` is an output's provenance configuration), a field of
    :data:`RESOLVED_PER_OUTPUT` left automatic in ``new`` matches any recorded value. Fields
    of :data:`ACTIVE_WHEN` whose switch is off in both are not compared.
    """
    out = []
    for path in dict.fromkeys([*new, *recorded]):
        old, now = recorded.get(path, _UNKNOWN), new.get(path, _UNKNOWN)
        switch = _switch(path)
        if switch is not None and not recorded.get(switch) and not new.get(switch):
            continue
        if per_output and path in RESOLVED_PER_OUTPUT and now == RESOLVED_PER_OUTPUT[path]:
            continue
        if old != now:
            out.append(ConfigDifference(path, old, now))
    return out


def _switch(path: str) -> str | None:
    for prefix, switch in ACTIVE_WHEN.items():
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            return switch
    return None


def _listed(diffs: list[ConfigDifference]) -> str:
    more = f"; and {len(diffs) - _SHOWN} more" if len(diffs) > _SHOWN else ""
    return "; ".join(map(str, diffs[:_SHOWN])) + more


def _refusal(butler: Butler, what: str, diffs: list[ConfigDifference]) -> RunConfigMismatchError:
    from repo_butler.runs import display_run

    return RunConfigMismatchError(
        f"run {display_run(butler.run)} of {butler.root} {what} another {TASK_LABEL} config: "
        f"{_listed(diffs)}. Nothing was run",
        remedy=Remedy("clobber_config", otherwise="write to another run"),
    )


@dataclass(frozen=True)
class RunConfigCheck:
    """What :func:`check_run_config` decided: the record to write before the first write."""

    config: Mapping[str, Any]  # the configuration to record (config_to_dict)
    write: bool  # the run has no record (or a differing one, clobbered): write it
    replace: bool  # the run has a differing record: replace it (clobber)
    replaced: tuple[ConfigDifference, ...] = ()  # what the clobber changes


def _output_types(butler: Butler) -> list[str]:
    """The dataset types MakeWarp may have written into the run (``*Coadd_*Warp`` and the direct
    warp's companions ``*Coadd_directWarp_*``)."""
    return sorted(
        name
        for name in butler.dataset_types
        if "Coadd_" in name
        and (name.endswith(("_directWarp", "_psfMatchedWarp")) or "Coadd_directWarp_" in name)
    )


def _provenance_config(butler: Butler, dataset_type: str, data_id: DataId) -> Any:
    """The configuration in the provenance of a dataset of the output run (None: it has no
    MakeWarp provenance)."""
    from repo_butler.provenance import decode_provenance

    text = butler.registry.get_provenance(dataset_type, data_id, butler.run)
    if text is None:
        return None
    doc = decode_provenance(text, source=f"{dataset_type} {data_id}")
    return doc.get("config") if doc.get("task") == TASK_LABEL else None


def _outputs_differ(
    butler: Butler, new: Mapping[str, Any]
) -> tuple[str, list[ConfigDifference]] | None:
    """The first warp of the run whose provenance records another configuration, and how."""
    for dataset_type in _output_types(butler):
        for ref in butler.query_datasets(dataset_type, runs=[butler.run]):
            recorded = _provenance_config(butler, dataset_type, ref.data_id)
            if recorded is None:
                continue
            diffs = differences(normalised(recorded), new, per_output=True)
            if diffs:
                return f"{dataset_type} {ref.data_id}", diffs
    return None


def check_run_config(
    butler: Butler, config: MakeWarpConfig, *, clobber: bool = False
) -> RunConfigCheck:
    """Compare ``config`` with the configuration the output run was made with; nothing is
    written here (:func:`record_run_config` writes the record before the first write).

    Raises
    ------
    RunConfigMismatchError
        If the run's record differs (or, for a run without a record, the provenance of one of
        its warps does) and ``clobber`` is false. The message lists the differing fields.
    """
    from repo_butler.runs import display_run

    doc = config_to_dict(config)
    new = normalised(config)
    record = butler.run_configs.get(TASK_LABEL)
    if record is not None:
        diffs = differences(normalised(record.config), new)
        if diffs and not clobber:
            raise _refusal(butler, "was made with", diffs)
        return RunConfigCheck(doc, write=bool(diffs), replace=bool(diffs), replaced=tuple(diffs))
    found = _outputs_differ(butler, new)  # a run of an earlier release: its warps tell
    if found is not None:
        where, diffs = found
        if not clobber:
            raise _refusal(butler, f"has no recorded config, but its {where} was made with", diffs)
        logger.warning(
            "--clobber-config: run %s holds %s made with another config (%s); recording this one",
            display_run(butler.run), where, _listed(diffs),
        )  # fmt: skip
    return RunConfigCheck(doc, write=True, replace=False)


def record_run_config(butler: Butler, check: RunConfigCheck) -> None:
    """Write the record :func:`check_run_config` decided on (call just before the first write).

    Raises
    ------
    RunConfigMismatchError
        If another writer recorded a different configuration since the check.
    """
    from repo_butler.run_configs import RunConfigExistsError
    from repo_butler.runs import display_run

    if not check.write:
        return
    try:
        butler.run_configs.put(TASK_LABEL, check.config, replace=check.replace)
    except RunConfigExistsError:  # another make-warp recorded one since the check
        record = butler.run_configs.get(TASK_LABEL)
        diffs = [] if record is None else differences(normalised(record.config),
                                                      normalised(check.config))  # fmt: skip
        if diffs:
            raise _refusal(butler, "was just recorded by another writer with", diffs) from None
        return
    if check.replace:
        logger.warning(
            "--clobber-config: replaced the recorded %s config of run %s (%s); its warps made "
            "with the old config are redone by --reuse",
            TASK_LABEL, display_run(butler.run), _listed(list(check.replaced)),
        )  # fmt: skip


def made_with(butler: Butler, dataset_type: str, data_id: DataId, new: Mapping[str, Any]) -> bool:
    """Whether an output of the run records (in its provenance) the :func:`normalised`
    configuration ``new``; when not, says why in the log (``--reuse`` then redoes it)."""
    recorded = _provenance_config(butler, dataset_type, data_id)
    if recorded is None:
        logger.info("%s %s has no %s provenance: redoing it", dataset_type, data_id, TASK_LABEL)
        return False
    diffs = differences(normalised(recorded), new, per_output=True)
    if diffs:
        logger.info(
            "%s %s was made with another config (%s): redoing it",
            dataset_type, data_id, _listed(diffs),
        )  # fmt: skip
        return False
    return True
