"""Build (once per machine) and load the compiled core with ctypes.

One shared library holds the warping core (``warping/warp/_ckernel.c``) and the PSF-matching
loops (``warping/psfmatch/_match_loops.c``, configured by :mod:`warping.psfmatch._match_loops`).

The shared library's file name carries a hash of the C sources, the compiler flags and the
platform, so a stale library is never loaded. It is looked for, in order, next to the source
(where ``make venv`` / ``python -m warping.warp._clib`` builds it) and in the user cache
(``$REPO_BUTLER_CACHE`` or ``$XDG_CACHE_HOME/repo-butler`` or ``~/.cache/repo-butler``); when
missing it is compiled into the first writable of those with ``$CC`` (default ``cc``), written to
a temporary name and renamed, so concurrent first calls (e.g. Dask workers) are safe.

Only the standard library is imported here: loading the core costs about a millisecond, which
keeps ``rb warp-image`` start-up small (no JIT).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from warping.errors import WarpingError

__all__ = [
    "CoreArgs",
    "CoreBuildError",
    "build_tag",
    "candidate_paths",
    "compile_shared",
    "find_compiler",
    "find_or_build",
    "library",
    "library_path",
]

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_ckernel.c")
#: Every C source compiled into the library (the warping core first).
SOURCES = (SOURCE, Path(__file__).resolve().parent.parent / "psfmatch" / "_match_loops.c")
#: No -ffast-math: NaN and infinity keep their IEEE meaning (NaN inputs must propagate).
CFLAGS = ("-O3", "-fno-math-errno", "-ffp-contract=fast", "-fPIC", "-shared", "-Wno-psabi")
ABI_VERSION = 4

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


class CoreBuildError(WarpingError, RuntimeError):
    """The C warping core could not be compiled or loaded."""


class CoreArgs(ctypes.Structure):
    """Mirror of ``rb_args`` in ``_ckernel.c`` (field order and types must match)."""

    _fields_ = [
        ("src_img", ctypes.c_void_p),
        ("src_var", ctypes.c_void_p),
        ("src_mask", ctypes.c_void_p),
        ("hs", ctypes.c_int64),
        ("ws", ctypes.c_int64),
        ("sstride", ctypes.c_int64),
        ("mstride", ctypes.c_int64),
        ("do_var", ctypes.c_int64),
        ("mask_in", ctypes.c_int64),
        ("mask_out", ctypes.c_int64),
        ("nodes_x", ctypes.c_void_p),
        ("nnx", ctypes.c_int64),
        ("nodes_y", ctypes.c_void_p),
        ("nny", ctypes.c_int64),
        ("gx", ctypes.c_void_p),
        ("gy", ctypes.c_void_p),
        ("ga", ctypes.c_void_p),
        ("step", ctypes.c_int64),
        ("origin_y", ctypes.c_int64),
        ("out_img", ctypes.c_void_p),
        ("out_var", ctypes.c_void_p),
        ("out_mask", ctypes.c_void_p),
        ("wd", ctypes.c_int64),
        ("ostride", ctypes.c_int64),
        ("vstride", ctypes.c_int64),
        ("omstride", ctypes.c_int64),
        ("kind", ctypes.c_int64),
        ("n", ctypes.c_int64),
        ("table", ctypes.c_void_p),
        ("dtable", ctypes.c_void_p),
        ("tsum", ctypes.c_void_p),
        ("tstride", ctypes.c_int64),
        ("rows", ctypes.c_int64),
        ("mkind", ctypes.c_int64),
        ("mn", ctypes.c_int64),
        ("full_bits", ctypes.c_int64),
        ("nodata_bits", ctypes.c_int64),
        ("pad_value", ctypes.c_double),
        ("conserve_flux", ctypes.c_int64),
        ("full_map", ctypes.c_void_p),
        ("map_cols", ctypes.c_int64),
        ("use_full_map", ctypes.c_int64),
    ]


def build_tag(files: tuple[Path, ...], flags: tuple[str, ...]) -> str:
    """Hash of ``files``' contents, the compiler ``flags`` and the platform: part of a built
    library's name, so a library built from other sources or flags is never loaded."""
    h = hashlib.sha256()
    for src in files:
        h.update(src.read_bytes())
    h.update(" ".join(flags).encode())
    h.update(f"{sys.platform}-{platform.machine()}".encode())
    return h.hexdigest()[:16]


def _cache_dir() -> Path:
    env = os.environ.get("REPO_BUTLER_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "repo-butler"


def candidate_paths(source: Path, name: str) -> list[Path]:
    """Where a library called ``name`` is looked for and built, in order: next to ``source``,
    then in the user cache."""
    return [source.with_name(name), _cache_dir() / name]


def library_path() -> list[Path]:
    """Candidate paths of the compiled core for this source and platform, in search order."""
    return candidate_paths(SOURCE, f"_ckernel-{build_tag(SOURCES, CFLAGS)}.so")


def find_or_build(candidates: list[Path], build: Callable[[Path], Path], what: str) -> Path:
    """The first of ``candidates`` that exists, else ``build`` into the first writable one.

    Raises
    ------
    CoreBuildError
        If no candidate directory is writable (or ``build`` fails).
    """
    found = next((p for p in candidates if p.exists()), None)
    if found is not None:
        return found
    errors = []
    for cand in candidates:
        try:
            return build(cand)
        except OSError as err:  # directory not writable: try the next one
            errors.append(f"{cand.parent}: {err}")
    raise CoreBuildError(
        f"cannot write {what} to any of: " + "; ".join(errors)
        + ". Set REPO_BUTLER_CACHE to a writable directory."
    )  # fmt: skip


def find_compiler(env: str, candidates: tuple[str, ...], missing: str) -> str:
    """``$env`` if set and on the PATH, else the first of ``candidates`` that is; raises
    :class:`CoreBuildError` with ``missing`` when there is none."""
    for cand in (os.environ.get(env, ""), *candidates):
        if cand and shutil.which(cand):
            return cand
    raise CoreBuildError(missing)


def _compiler() -> str:
    return find_compiler(
        "CC", ("cc", "gcc", "clang"),
        "no C compiler found to build the warping core; install gcc (Debian: apt-get install "
        "gcc) or set CC, then rerun",
    )  # fmt: skip


def compile_shared(
    target: Path,
    command: list[str],
    sources: tuple[Path, ...],
    libs: tuple[str, ...],
    stale_glob: str,
    what: str,
) -> Path:
    """Run ``command + ["-o", tmp, *sources, *libs]`` and move the result to ``target``
    atomically (temporary file + rename); then delete other builds matching ``stale_glob`` next
    to it (builds of older sources, no longer loadable). ``what`` names the library in errors."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [*command, "-o", tmp, *(str(src) for src in sources), *libs]
    logger.info("building %s: %s", what, " ".join(cmd))
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise CoreBuildError(
                f"compiling {what} from {', '.join(str(src) for src in sources)} failed "
                f"({' '.join(cmd)}):\n{res.stderr.strip()[-2000:]}"
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    for stale in target.parent.glob(stale_glob):
        if stale != target:
            with contextlib.suppress(OSError):
                stale.unlink()  # safe on POSIX even if another process has it mapped
    return target


def build(target: Path) -> Path:
    """Compile the C sources to ``target`` (atomically: temporary file + rename)."""
    return compile_shared(
        target, [_compiler(), *CFLAGS], SOURCES, ("-lm",), "_ckernel-*.so", "the warping core"
    )


def _configure(lib: ctypes.CDLL) -> ctypes.CDLL:
    lib.rb_abi_version.restype = ctypes.c_int64
    if lib.rb_abi_version() != ABI_VERSION:
        raise CoreBuildError(f"warping core ABI {lib.rb_abi_version()} != {ABI_VERSION}")
    for name in ("rb_warp_rows_f32", "rb_warp_rows_f64"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int64
        fn.argtypes = [ctypes.POINTER(CoreArgs), ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.rb_block_map.restype = None
    lib.rb_block_map.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int32,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    return lib


def library() -> ctypes.CDLL:
    """The loaded C core, building it on first use on this machine (thread-safe)."""
    global _lib
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        found = find_or_build(library_path(), build, "the compiled warping core")
        try:
            _lib = _configure(ctypes.CDLL(str(found)))
        except OSError as err:
            raise CoreBuildError(
                f"cannot load the warping core {found} ({err}); delete it and rerun to rebuild"
            ) from None
        return _lib


if __name__ == "__main__":  # ``python -m warping.warp._clib``: build now (make venv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(library()._name)
