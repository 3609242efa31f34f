"""What the packaging costs a user: wheel size, build and install time, import time and memory of
the core install, and the per-visit make-warp time from the wheel against the editable install.

Builds a wheel from this checkout (meson-python, the dev venv's meson and ninja), installs it into
a fresh venv with only the core dependencies (binary wheels only), and times:

* ``pip wheel .`` (compiling the C core and both C++ FFT builds) and the wheel's size;
* ``pip install`` of the wheel with its dependencies into an empty venv, and of the wheel alone
  into a venv that has them (what upgrading costs);
* ``import repo_butler`` and ``rb --version`` in the core install (best of N processes), and the
  import's RSS above a bare interpreter;
* ``rb make-warp`` of one visit (4 HSC-size CCDs, 1 thread) from the wheel and from the editable
  install, alternately, ``--repeat`` times each after a warm-up (same command as make_warp_bench);
  the median is compared (single runs on a shared machine vary by more than the difference).

Run alone on an idle machine::

    .venv/bin/python bench/packaging_bench.py --repo /tmp/demo --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _results import Results
from make_warp_bench import VISIT, drop_rerun, ensure_repo, timed

ROOT = Path(__file__).resolve().parents[1]
DEV_BIN = Path(sys.executable).parent


def _run(cmd: list[str], **kw: object) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t0


def build_wheel(out: Path) -> tuple[Path, float]:
    env = {**os.environ, "PATH": f"{DEV_BIN}:{os.environ['PATH']}"}
    wall = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--no-build-isolation", "--wheel-dir", str(out), str(ROOT)], env=env)  # fmt: skip
    return next(out.glob("repo_butler-*.whl")), wall


def best_process(cmd: list[str], repeat: int, env: dict[str, str]) -> float:
    return min(_run(cmd, env=env) for _ in range(repeat))


def rss_mb(python: Path, code: str, env: dict[str, str]) -> float:
    """Peak RSS of a process running ``code``: its own ``VmHWM`` (``ru_maxrss`` would start
    from this script's size, inherited at the fork)."""
    probe = "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    out = subprocess.run(
        [str(python), "-c", f"{code}\n{probe}"], check=True, capture_output=True, text=True,
        env=env,
    ).stdout  # fmt: skip
    return int(out.split()[-1]) / 1024


def make_warp(bin_dir: Path, repo: Path, rerun: str, env: dict[str, str]) -> dict:
    drop_rerun(repo, rerun)
    cmd = [str(bin_dir / "rb"), "make-warp", str(repo), "--rerun", rerun, "--id", "tract=0",
           "patch=5,4", "filter=HSC-I", "--selectId", f"visit={VISIT}"]  # fmt: skip
    result = timed(cmd, env=env)
    drop_rerun(repo, rerun)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("/tmp/demo"))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    repo = args.repo.resolve()
    ensure_repo(repo)
    python3 = shutil.which("python3", path="/usr/local/bin:/usr/bin") or "python3"
    with tempfile.TemporaryDirectory(prefix="rb-packaging-") as tmp:
        work = Path(tmp)
        wheel, build_s = build_wheel(work / "dist")
        names = zipfile.ZipFile(wheel).infolist()
        libs = {i.filename.rsplit("/", 1)[-1].split(".")[0]: i.file_size for i in names
                if i.filename.endswith(".so")}  # fmt: skip
        wheel_mb = wheel.stat().st_size / 1e6
        print(f"wheel {wheel.name}: {wheel_mb:.2f} MB, built in {build_s:.1f} s")

        subprocess.run([python3, "-m", "venv", str(work / "core")], check=True)
        core = work / "core" / "bin"
        pip = [str(core / "python"), "-m", "pip", "install", "--quiet", "--only-binary=:all:"]
        install_s = _run([*pip, str(wheel)])
        reinstall_s = _run([*pip, "--no-deps", "--force-reinstall", str(wheel)])
        site_mb = sum(f.stat().st_size for f in (work / "core").rglob("*") if f.is_file()) / 1e6
        print(f"install with dependencies {install_s:.1f} s, wheel alone {reinstall_s:.1f} s")

        env = {"PATH": f"{core}:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
        os.chdir(work)  # not the checkout: its packages must not shadow the installed ones
        bare_s = best_process([str(core / "python"), "-c", "pass"], 10, env)
        import_s = best_process([str(core / "python"), "-c", "import repo_butler"], 10, env)
        version_s = best_process([str(core / "rb"), "--version"], 10, env)
        bare_rss = rss_mb(core / "python", "pass", env)
        import_rss = rss_mb(core / "python", "import repo_butler", env)
        installed = subprocess.run(
            [str(core / "python"), "-m", "pip", "list", "--format=freeze"],
            check=True, capture_output=True, text=True, env=env,
        ).stdout  # fmt: skip
        extras = [n for n in ("matplotlib", "dask", "distributed", "bokeh", "psycopg")
                  if f"\n{n}==" in "\n" + installed.lower()]  # fmt: skip
        print(f"import repo_butler {1e3 * (import_s - bare_s):.0f} ms above a bare interpreter")

        run_env = {**os.environ, "REPO_BUTLER_THREADS": "1"}
        walls: dict[str, list[float]] = {"wheel": [], "editable": []}
        for rep in range(args.repeat + 1):  # the first round warms caches and is discarded
            for label, bin_dir in (("wheel", core), ("editable", DEV_BIN)):
                r = make_warp(bin_dir, repo, f"bench-packaging-{label}", {**run_env})
                if rep:
                    walls[label].append(r["wall"])
            print(f"# round {rep} done", flush=True)
        os.chdir(ROOT)  # before the temporary directory goes

    res = Results("packaging_bench", "The wheel: size, build, install, import, make-warp time")
    mw_wheel, mw_dev = statistics.median(walls["wheel"]), statistics.median(walls["editable"])
    rows = [
        ["wheel size", f"{wheel_mb:.2f} MB", ", ".join(f"{k} {v / 1e3:.0f} kB"
                                                       for k, v in sorted(libs.items()))],
        ["pip wheel . (compile C core + 2 FFT builds)", f"{build_s:.1f} s", ""],
        ["pip install wheel + core deps, empty venv", f"{install_s:.1f} s",
         f"venv {site_mb:.0f} MB; extras installed: {', '.join(extras) or 'none'}"],
        ["pip install wheel alone (--no-deps)", f"{reinstall_s:.1f} s", ""],
        ["import repo_butler (core install)", f"{1e3 * (import_s - bare_s):.0f} ms",
         f"{import_s * 1e3:.0f} ms process, bare python {bare_s * 1e3:.0f} ms"],
        ["import repo_butler RSS", f"{import_rss - bare_rss:.1f} MB",
         f"{import_rss:.1f} MB process, bare python {bare_rss:.1f} MB"],
        ["rb --version (core install)", f"{version_s * 1e3:.0f} ms", ""],
        ["rb make-warp, 1 visit, 1 thread: wheel", f"{mw_wheel:.2f} s",
         f"median of {len(walls['wheel'])}, best {min(walls['wheel']):.2f} s"],
        ["rb make-warp, 1 visit, 1 thread: editable", f"{mw_dev:.2f} s",
         f"median of {len(walls['editable'])}, best {min(walls['editable']):.2f} s; "
         f"wheel / editable {mw_wheel / mw_dev:.3f}"],
    ]  # fmt: skip
    res.table(["what", "figure", "detail"], rows)
    res.figure("wheel size", wheel_mb, unit="MB")
    res.figure("wheel build", build_s, unit="s")
    res.figure("install with dependencies", install_s, unit="s")
    res.figure("install wheel alone", reinstall_s, unit="s")
    res.figure("import repo_butler", 1e3 * (import_s - bare_s), unit="ms")
    res.figure("import repo_butler RSS", import_rss - bare_rss, unit="MB")
    res.figure("make-warp wheel / editable", mw_wheel / mw_dev, unit="x")
    res.target("make-warp wheel / editable", "<=", 1.05)
    res.note(
        "Install times depend on the package index and pip's cache; 'wheel alone' is what "
        "upgrading repo-butler costs. The core install is the wheel without extras."
    )
    res.write()
    width = max(len(r[0]) for r in rows)
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>10}  {r[2]}")


if __name__ == "__main__":
    main()
