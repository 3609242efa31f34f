"""Every ``rb`` command shown in README.md and docs/*.md runs (issue 20, point 6).

Commands are read from the documents themselves, so a new page or a new command in a code block
is covered without editing this file:

* **runnable** lines of fenced code blocks (bash/sh/console or unlabelled) run, in document
  order, one workspace per document, through the real ``rb`` app; each must exit 0;
* **synopses** — lines with ``[optional]`` parts, ``a|b`` alternatives or ``...``, in code blocks
  or in inline code such as the README's command table — are checked against the command's
  ``--help``: every option they name must be a visible option of that command.

Each workspace starts as a copy of one template, standing in for what the documents assume:

=====================  ==========================================================================
``demo-repo``          what ``make demo`` leaves, at test scale (visits 903986, 903988, 904010,
                       CCDs 9, 16, 17, 23, 24, tract 0 patch 5,4, warps in rerun ``ci_hsc``)
``REPO``               ``demo-repo`` (the placeholder of the reference pages)
``no-skymap-repo``     ``demo-repo`` without its skymap
``extra.yaml``         a butler.yaml overlay adding one dataset type
``matchingConfig.py``  the make-warp config file docs/make-warp.md shows
``$D``, ``shared/``    ``../shared/data`` (those commands skip when it is absent)
=====================  ==========================================================================

The substitution table :data:`SUBSTITUTIONS` maps what the documents show but a test cannot have
(someone's bucket, a cluster address, files of an instrument we hold no data for) onto the
equivalent here; each entry says why. An ``s3://`` URL becomes a prefix of the test SeaweedFS
server (its ``-S`` options replace ``profile=``/``endpoint_url=``), holding a copy of
``demo-repo`` unless the document's first S3 command creates the repository. ``rb create PATH``
of a path already in the workspace starts that repository afresh (the documents' examples each
start one).
"""

from __future__ import annotations

import glob
import re
import shlex
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from conftest import SHARED_DATA
from repo_copy import copy_repo
from typer.testing import CliRunner

from repo_butler_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMANDS: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Substitution:
    """A regular expression replaced in a documented command before it runs, and why."""

    pattern: str
    replacement: str
    why: str


SUBSTITUTIONS = [
    Substitution(r"/data/01178/HSC-I/corr/", "demo-repo/01116/HSC-I/corr/",
                 "someone's HSC Gen2 tree: the demo repository's calexps are laid out the same"),
    Substitution(r"(?<![\w/.])calexp\.fits -d pointing=0 (.*) -d ccd=16",
                 r"demo-repo/01116/HSC-I/corr/CORR-0903988-017.fits -d pointing=1116 \1 -d ccd=17",
                 "a calexp file of ours: the demo's CCD 17, with its own pointing and CCD"),
    Substitution(r"(?<![\w/.])(shared/data|\.\./shared/data)", str(SHARED_DATA),
                 "the sample LSST files beside the checkout"),
    Substitution(r"(?<![\w/.])bkgd-849375-12\.fits",
                 str(SHARED_DATA / "lsst-jointcal-extra" / "bkgd-849375-12.fits"),
                 "a real calexpBackground of the CFHT calexp (../shared/data)"),
    Substitution(r"(?<![\w/.])meas_modelfit/calexp\.fits",
                 str(SHARED_DATA / "lsst-meas_modelfit" / "calexp.fits"),
                 "the PhoSim calexp of meas_modelfit (../shared/data)"),
    Substitution(r"visitSummary_1176\.fits|filter=HSC-Z", "SKIP",
                 "an HSC-Z visitSummary we hold no copy of (not run; its options are checked); "
                 "tests/test_make_warp_visit_summary_repo.py runs these commands on real files"),
    Substitution(r"(rb make-warp \S*cfht\S* .*|rb make-warp \./repo --rerun final --id "
                 r"tract=0 patch=0,1 .*)$", r"\1 --show-config",
                 "the real CFHT warp takes ~20 s: here it parses and configures only; "
                 "tests/test_make_warp_real_cfht.py runs it and checks the numbers"),
    Substitution(r"^rb make-skymap REPO(?!.*--overwrite)", "rb make-skymap no-skymap-repo",
                 "a repository without a skymap yet: demo-repo less its skymap"),
    Substitution(r"tcp://[\w.-]+:8786", "{scheduler}",
                 "an existing Dask cluster: a local one started by this test"),
    Substitution(r"--id tract=\d+(?=\s+--(jobs|dask-scheduler))",
                 "--id tract=0 --selectId visit=903988",
                 "whole-tract runs on one visit of the demo's tract (20-30 s each with three); "
                 "tests/test_dask_local.py and tests/test_dask_cloud.py run whole tracts"),
    Substitution(r"--instrument HSC --id tract=0 patch=5,4 filter=HSC-I$",
                 "--instrument HSC --id tract=0 patch=5,4 filter=HSC-I --selectId visit=903988",
                 "PSF-matching one visit shows the same as three (12 s)"),
]  # fmt: skip


@dataclass(frozen=True)
class DocCommand:
    """One ``rb`` command shown in a document."""

    doc: str
    block: int
    line: int
    text: str
    synopsis: bool

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def _is_synopsis(text: str) -> bool:
    bare = re.sub(r"\"[^\"]*\"|'[^']*'", "", text)
    return bool(re.search(r"(^|\s)[\[(]|\||\.\.\.|…|<\w+>", bare))


def _strip_comment(text: str) -> str:
    """The command without a trailing ``# comment`` (outside quotes)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text.rstrip()


def doc_commands(path: Path) -> list[DocCommand]:
    """Every ``rb`` command of a document's shell code blocks and inline code, in order."""
    text = path.read_text()
    name = str(path.relative_to(ROOT))
    out: list[DocCommand] = []
    for block in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        if block.group(1) not in SHELL_BLOCKS:
            continue
        first = text.count("\n", 0, block.start(2)) + 1
        lines = block.group(2).split("\n")
        i = 0
        while i < len(lines):
            start, joined = i, lines[i]
            while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            command = _strip_comment(joined.strip().removeprefix("$ "))
            if re.match(r"(rb |[A-Z_]+=\S+$)", command):
                out.append(
                    DocCommand(name, block.start(), first + start, command, _is_synopsis(command))
                )
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    for span in re.finditer(r"`(rb [^`]+)`", outside):
        words = span.group(1).split()
        if len(words) > 1 and words[1] in COMMANDS:
            line = text.count("\n", 0, text.find(span.group(0))) + 1
            out.append(DocCommand(name, -1, line, span.group(1).replace("\\|", "|"), True))
    return out


def _options(command: str, *, hidden: bool) -> set[str]:
    params = COMMANDS[command].params
    return {o for p in params if hidden or not getattr(p, "hidden", False)
            for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}  # fmt: skip


def check_options(cmd: DocCommand) -> list[str]:
    """What is wrong with the command's name and option spellings (shown options: visible)."""
    words = cmd.text.replace("[", " ").replace("]", " ").replace("(", " ").replace(")", " ")
    words = words.replace("|", " ").split()
    problems = []
    for part in " ".join(words).split("&&"):
        tokens = part.split()
        if not tokens or tokens[0] != "rb":
            continue
        if len(tokens) < 2 or tokens[1] not in COMMANDS:
            problems.append(f"{cmd}: unknown command {tokens[1:2]}")
            continue
        known = _options(tokens[1], hidden=False) | {"--help"}
        for tok in tokens[2:]:
            name = tok.split("=", 1)[0]
            if re.fullmatch(r"--?[A-Za-z][\w-]*", name) and name not in known:
                problems.append(f"{cmd}: rb {tokens[1]} has no visible option {name}")
    return problems


# --- the workspace --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scale_support import write_small_repo

    from repo_butler import Butler
    from warping.task.config import MakeWarpConfig
    from warping.task.runner import run_make_warp

    root = tmp_path_factory.mktemp("docs-template")
    write_small_repo(str(root / "demo-repo")).close()
    with Butler(str(root / "demo-repo"), rerun="ci_hsc") as out:
        patch = {"tract": 0, "patch": "5,4", "filter": "HSC-I"}
        assert run_make_warp(out, patch, config=MakeWarpConfig()).visits
    copy_repo(root / "demo-repo", root / "no-skymap-repo")
    with Butler(str(root / "no-skymap-repo")) as butler:
        butler.remove("deepCoadd_skyMap", {})
    (root / "extra.yaml").write_text(
        "dataset_types:\n  notes:\n    dimensions: [visit]\n    formatter: json\n"
        "    template: 'notes/notes-{visit:07d}.json'\n"
    )
    (root / "matchingConfig.py").write_text(  # as docs/make-warp.md shows it
        'config.warpAndPsfMatch.psfMatch.kernel["AL"].kernelSize = 27\n'
        'config.warpAndPsfMatch.psfMatch.kernel["AL"].alardSigGauss = [1.5, 3.0, 6.0]\n'
    )
    return root


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@dataclass
class Workspace:
    """One document's working directory, environment and (lazily) its S3 repository."""

    path: Path
    env: dict[str, str]
    request: pytest.FixtureRequest
    ran: list[str] = field(default_factory=list)
    s3_url: str | None = None
    s3_options: list[str] | None = None

    def s3(self, command: str) -> tuple[str, list[str]]:
        """The document's S3 repository URL and ``-S`` options; the first command decides what
        it holds: nothing (``create``), the demo repository (``make-warp``) or an empty one."""
        if self.s3_url is None:
            server = self.request.getfixturevalue("seaweed")
            self.s3_url = server.url(f"docs-{uuid.uuid4().hex[:10]}")
            opts = server.storage_options()
            flat = {"key": opts["key"], "secret": opts["secret"],
                    "client_kwargs.endpoint_url": opts["client_kwargs"]["endpoint_url"],
                    "client_kwargs.region_name": opts["client_kwargs"]["region_name"]}  # fmt: skip
            self.s3_options = [a for k, v in flat.items() for a in ("-S", f"{k}={v}")]
            if command == "make-warp":
                from scale_support import write_small_repo

                write_small_repo(self.s3_url, storage_options=opts).close()
            elif command != "create":
                from repo_butler import Butler

                Butler.create(self.s3_url, storage_options=opts).close()
        assert self.s3_options is not None
        return self.s3_url, self.s3_options


def _substitute(text: str, scheduler: str) -> str | None:
    for sub in SUBSTITUTIONS:
        if re.search(sub.pattern, text):
            if sub.replacement == "SKIP":
                return None
            text = re.sub(sub.pattern, sub.replacement.replace("{scheduler}", scheduler), text)
    return text


def _expand(tokens: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        tok = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env[m.group(1) or m.group(2)], tok)
        if re.search(r"[*?]|\[\w+\]", tok):
            matches = sorted(glob.glob(tok, root_dir=cwd))
            assert matches, f"no file matches {tok}"
            out += matches
        else:
            out.append(tok)
    return out


def _without_s3_identity(tokens: list[str]) -> list[str]:
    """``tokens`` without ``-S profile=...`` / ``-S endpoint_url=...`` (someone's bucket)."""
    out: list[str] = []
    for tok in tokens:
        if out and out[-1] == "-S" and re.match(r"(profile|endpoint_url)=", tok):
            out.pop()
        else:
            out.append(tok)
    return out


def run_command(cmd: DocCommand, ws: Workspace, scheduler: str) -> str | None:
    """Run one documented command in ``ws``; a problem, or None."""
    text = _substitute(cmd.text, scheduler)
    if text is None:
        return None
    ws.ran.append(text)
    if "REPO" in text.split():
        text = re.sub(r"(?<=\s)REPO(?=\s|$)", "demo-repo", text)
    for part in text.split(" && "):
        assignment = re.fullmatch(r"([A-Z_]+)=(\S+)", part.strip())
        if assignment:
            ws.env[assignment.group(1)] = assignment.group(2)
            continue
        tokens = shlex.split(part)
        redirect = None
        if ">" in tokens:
            redirect = tokens[tokens.index(">") + 1]
            tokens = tokens[: tokens.index(">")]
        tokens = _expand(tokens[1:], ws.env, ws.path)
        urls = [t for t in tokens if t.startswith("s3://")]
        if urls:
            tokens = _without_s3_identity(tokens)
            url, options = ws.s3(tokens[0])
            tokens = [url if t in urls else t for t in tokens] + options
        if tokens[0] == "create" and (ws.path / tokens[1]).exists():
            shutil.rmtree(ws.path / tokens[1])
        result = CliRunner().invoke(app, tokens, catch_exceptions=True)
        if result.exit_code != 0 or "Traceback" in result.output:
            return f"{cmd}\n  ran: rb {' '.join(tokens)}\n  exit {result.exit_code}: " + (
                f"{result.exception!r}\n{result.output[-2000:]}"
            )
        if redirect:
            (ws.path / redirect).write_text(result.stdout)
    return None


def _uses_shared_data(cmd: DocCommand) -> bool:
    return bool(re.search(r"shared/data|\$D\b|\$\{D\}|bkgd-|meas_modelfit/", cmd.text))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_run(
    doc: Path,
    template: Path,
    scheduler: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands = [c for c in doc_commands(doc) if not c.synopsis]
    if not commands:
        pytest.skip(f"{doc.name} shows no runnable rb command")
    work = tmp_path / "work"
    work.mkdir()
    for item in template.iterdir():
        if (item / "butler.yaml").exists():
            copy_repo(item, work / item.name)
        else:
            shutil.copy(item, work / item.name)
    monkeypatch.chdir(work)
    ws = Workspace(work, {}, request)
    problems = []
    skipped_blocks = set()
    for cmd in commands:
        if cmd.block in skipped_blocks or (_uses_shared_data(cmd) and not SHARED_DATA.is_dir()):
            skipped_blocks.add(cmd.block)  # the rest of the block builds on what it would make
            continue
        problem = run_command(cmd, ws, scheduler)
        if problem:
            problems.append(problem)
    if ws.s3_url:
        with_server = request.getfixturevalue("seaweed")
        with_server.admin_fs.rm(ws.s3_url.removeprefix("s3://"), recursive=True)
    assert not problems, "\n\n".join(problems)
    assert ws.ran or not SHARED_DATA.is_dir()


def test_documented_options_exist() -> None:
    """Every option a document shows (synopses included) is a visible option of its command."""
    problems = [p for doc in DOCS for cmd in doc_commands(doc) for p in check_options(cmd)]
    assert not problems, "\n".join(problems)


def test_the_extractor_sees_what_the_documents_show() -> None:
    readme = doc_commands(ROOT / "README.md")
    texts = [c.text for c in readme]
    assert 'rb query-datasets demo-repo calexp --where "visit = 903988"' in texts
    make_warp = next(c for c in readme if c.text.startswith("rb make-warp demo-repo --rerun mine"))
    assert make_warp.text.endswith("doApplyExternalPhotoCalib=True") and not make_warp.synopsis
    assert any(c.synopsis and c.text.startswith("rb create REPO") for c in readme)
    assert sum(not c.synopsis for d in DOCS for c in doc_commands(d)) >= 40
    assert _strip_comment('rb x -w "a # b"   # note') == 'rb x -w "a # b"'
    assert _is_synopsis("rb verify REPO [--format table|json]")
    assert not _is_synopsis('rb query-datasets r calexp -w "ccd IN (16..20)"')
