"""Importing datasets from LSST Gen3 (daf_butler) repositories through their export files.

``butler export`` writes a YAML file (dimension records, collections, dataset types, datasets
with data IDs, paths and formatters) beside the files it exports. :func:`import_gen3` reads one
(:mod:`~repo_butler.gen3.export`), maps its datasets into a repository here
(:mod:`~repo_butler.gen3.plan`, with Gen3's dimension vocabulary from
:mod:`~repo_butler.gen3.vocabulary`) and registers them all or none
(:mod:`~repo_butler.gen3.apply`). Which Gen3 dataset types a repository accepts is data the
caller passes in (a table of :class:`Gen3TypeRule`): this package knows Gen3's words, not what
any dataset is for.
"""

from repo_butler.gen3.apply import Gen3Transfer, MissingFilesError
from repo_butler.gen3.export import Gen3Export, Gen3ExportError, parse_export, read_export
from repo_butler.gen3.importer import Gen3ImportReport, import_gen3
from repo_butler.gen3.plan import Gen3TypeRule, build_plan, run_name

__all__ = [
    "Gen3Export",
    "Gen3ExportError",
    "Gen3ImportReport",
    "Gen3Transfer",
    "Gen3TypeRule",
    "MissingFilesError",
    "build_plan",
    "import_gen3",
    "parse_export",
    "read_export",
    "run_name",
]
