#!/usr/bin/env python3
"""Build the station device's ``.deb`` from a staging tree with ``dpkg-deb --build``.

The package installs the agent under ``/opt/forecourt`` with **its own Python environment made at
install time from wheels bundled in the package** (``/opt/forecourt/wheels`` plus a hash-pinned
``requirements.lock``), so a technician installs without internet.  Config lives in
``/etc/forecourt/``, data in ``/var/lib/forecourt/``, logs go to journald.  See packaging/README.md.

Where the wheels come from (exactly one):

* ``--from-venv VENV`` (default ``.venv``): repack the project's pinned runtime dependencies as
  installed in a virtualenv (the one ``scripts/setup.sh`` made from ``pyproject.toml``).  Offline,
  same architecture as this machine only.  Versions are checked against the ``==`` pins.
* ``--download``: ``pip download --only-binary=:all:`` for ``--arch`` (amd64 or arm64) into the
  cache; needs PyPI (or a mirror in pip's config).  This is how an arm64 package is built on amd64.
* ``--wheels DIR``: a directory already holding every wheel.

The project itself is always built here as a pure-Python wheel (no setuptools/wheel needed).

Reproducible: every timestamp (wheel entries, staged files, ``ar`` members) is
``SOURCE_DATE_EPOCH`` (default: the last commit's time), files are sorted, owners are root
(``--root-owner-group``), and repacked wheels are byte-identical for identical input.

Limits: bundled binary wheels are for CPython 3.11 (the package depends on ``python3 (<< 3.12)``);
the venv is created by ``postinst`` and is not tracked by dpkg (``postrm`` removes it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata as md
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGE = "forecourt"
#: Runtime Debian dependencies (the brief's list; python3 upper bound because wheels are cp311).
DEPENDS = [
    "python3 (>= 3.11)", "python3 (<< 3.12)", "python3-venv", "fonts-wqy-microhei",
    # what the bundled PySide6 loads: QtGui (libGL, EGL, fontconfig, xkbcommon, glib, dbus) and the
    # xcb platform plugin the kiosk runs on (tests/packaging/test_deb.py checks this list with ldd)
    "libgl1", "libegl1", "libxkbcommon0", "libfontconfig1", "libdbus-1-3", "libglib2.0-0",
    "libx11-xcb1", "libxkbcommon-x11-0", "libxcb-cursor0", "libxcb-icccm4", "libxcb-image0",
    "libxcb-keysyms1", "libxcb-randr0", "libxcb-render-util0", "libxcb-shape0", "libxcb-xkb1",
    "passwd",
]
RECOMMENDS = ["mosquitto", "openssl"]
PLATFORMS = {"amd64": "manylinux_2_34_x86_64", "arm64": "manylinux_2_34_aarch64"}
#: Debian 12's glibc: a wheel built for a newer one (manylinux_2_39, say) would not load on the device.
TARGET_GLIBC = (2, 36)


def pip_platforms(machine: str, glibc: tuple[int, int] = TARGET_GLIBC) -> list[str]:
    """Every wheel platform tag a Debian 12 device of this CPU can load, newest first."""
    tags = [f"manylinux_{glibc[0]}_{minor}_{machine}" for minor in range(glibc[1], 16, -1)]
    return tags + [f"manylinux2014_{machine}", f"linux_{machine}"]


PIP_PLATFORMS = {"amd64": pip_platforms("x86_64"), "arm64": pip_platforms("aarch64")}
SKIP_DIST_INFO = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def log(msg: str) -> None:
    sys.stderr.write(f"[build_deb] {msg}\n")
    sys.stderr.flush()


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _escape(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def source_date_epoch() -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True,
                             text=True, check=True, timeout=30).stdout.strip()
        return int(out)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 315532800  # 1980-01-01, the earliest a zip can hold


def _zip_time(epoch: int) -> tuple[int, int, int, int, int, int]:
    t = time.gmtime(max(epoch, 315532800))
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(path: Path, files: Iterable[tuple[str, bytes, int]], dist_info: str, epoch: int,
                *, level: int = 6) -> None:
    """Write a wheel: ``files`` are (archive name, bytes, unix mode); RECORD is computed here."""
    stamp = _zip_time(epoch)
    entries = sorted(files, key=lambda f: (f[0].startswith(dist_info + "/"), f[0]))
    record = io.StringIO()
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, stamp)
            info.external_attr = ((mode & 0o777) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=level)
            record.write(f"{name},{_record_hash(data)},{len(data)}\n")
        record.write(f"{dist_info}/RECORD,,\n")
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", stamp)
        info.external_attr = 0o100644 << 16
        zf.writestr(info, record.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)
    tmp.replace(path)


# ------------------------------------------------------------------ the project wheel
def project_metadata() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def build_project_wheel(out_dir: Path, epoch: int) -> Path:
    """The project as a pure-Python wheel, from pyproject.toml's package list (``include`` globs, package data)."""
    py = project_metadata()
    proj = py["project"]
    assert isinstance(proj, dict)
    tool = py.get("tool", {})
    assert isinstance(tool, dict)
    st = tool.get("setuptools", {})
    includes = st.get("packages", {}).get("find", {}).get("include", [])
    data_globs = [g for globs in st.get("package-data", {}).values() for g in globs]
    name, version = proj["name"], proj["version"]
    files: list[tuple[str, bytes, int]] = []
    for mod in st.get("py-modules", []):
        files.append((f"{mod}.py", (ROOT / f"{mod}.py").read_bytes(), 0o644))
    for init in sorted(ROOT.rglob("__init__.py")):
        pkg_dir = init.parent
        dotted = ".".join(pkg_dir.relative_to(ROOT).parts)
        if ".venv" in pkg_dir.parts or not any(re.fullmatch(g.replace(".", r"\.").replace("*", ".*"), dotted)
                                                 for g in includes):
            continue
        for f in sorted(pkg_dir.iterdir()):
            if f.is_file() and (f.suffix == ".py" or any(f.match(g) for g in data_globs)):
                files.append((f.relative_to(ROOT).as_posix(), f.read_bytes(), 0o644))
    dist_info = f"{_escape(name)}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
            f"Summary: {proj.get('description', '')}", f"Requires-Python: {proj.get('requires-python', '')}"]
    meta += [f"Requires-Dist: {d}" for d in proj.get("dependencies", [])]
    files.append((f"{dist_info}/METADATA", ("\n".join(meta) + "\n").encode(), 0o644))
    files.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: forecourt build_deb\n"
                                       b"Root-Is-Purelib: true\nTag: py3-none-any\n", 0o644))
    scripts = proj.get("scripts", {})
    if scripts:
        ep = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
        files.append((f"{dist_info}/entry_points.txt", ep.encode(), 0o644))
    out = out_dir / f"{_escape(name)}-{version}-py3-none-any.whl"
    write_wheel(out, files, dist_info, epoch)
    return out


# ------------------------------------------------------------------ dependency wheels
def _requirement_name(req: str) -> str:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    if not m:
        raise ValueError(f"cannot read requirement {req!r}")
    return _norm(m.group(1))


def _marker_ok(req: str) -> bool:
    """Evaluate a requirement's environment marker for this interpreter (extras never apply)."""
    if ";" not in req:
        return True
    marker = req.split(";", 1)[1].strip()
    try:
        from packaging.markers import Marker
    except ImportError:
        from pip._vendor.packaging.markers import Marker  # type: ignore[assignment,unused-ignore]
    return bool(Marker(marker).evaluate({"extra": ""}))


def runtime_pins() -> dict[str, str]:
    """name -> pinned version (``==``) or "" for ranges, from pyproject.toml's dependencies."""
    deps = project_metadata()["project"]["dependencies"]  # type: ignore[index]
    out = {}
    for d in deps:
        m = re.search(r"==\s*([^\s,;]+)", d)
        out[_requirement_name(d)] = m.group(1) if m else ""
    return out


def closure_from_venv(site_packages: Path) -> list[md.Distribution]:
    dists = {_norm(d.metadata["Name"]): d for d in md.distributions(path=[str(site_packages)])}
    pins = runtime_pins()
    todo, seen = list(pins), set()
    out = []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        dist = dists.get(name)
        if dist is None:
            raise SystemExit(f"{name} is not installed in {site_packages}: run scripts/setup.sh first")
        if pins.get(name) and dist.version != pins[name]:
            raise SystemExit(f"{name} {dist.version} installed, but pyproject.toml pins {pins[name]}")
        out.append(dist)
        for req in dist.requires or []:
            if _marker_ok(req):
                todo.append(_requirement_name(req))
    return sorted(out, key=lambda d: _norm(d.metadata["Name"]))


def _wheel_tag(dist: md.Distribution) -> str:
    wheel = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    if not tags:
        return "py3-none-any"
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))


def repack(dist: md.Distribution, out_dir: Path, epoch: int) -> Path:
    """Rebuild the wheel of an installed distribution from its RECORD (scripts are regenerated by pip)."""
    name, version = dist.metadata["Name"], dist.version
    target = out_dir / f"{_escape(name)}-{version}-{_wheel_tag(dist)}.whl"
    if target.exists():
        return target
    base = Path(str(dist.locate_file("")))
    files = []
    dist_info = None
    for rel in dist.files or []:
        posix = rel.as_posix()
        if posix.startswith("..") or "__pycache__/" in posix or posix.endswith(".pyc"):
            continue
        top = posix.split("/", 1)[0]
        if top.endswith(".dist-info"):
            dist_info = top
            if posix.split("/", 1)[1] in SKIP_DIST_INFO:
                continue
        p = base / posix
        files.append((posix, p.read_bytes(), p.stat().st_mode))
    if dist_info is None:
        raise SystemExit(f"{name}: no .dist-info in RECORD")
    write_wheel(target, files, dist_info, epoch)
    return target


def wheels_from_venv(venv: Path, cache: Path, epoch: int) -> list[Path]:
    sites = list((venv / "lib").glob("python3*/site-packages"))
    if not sites:
        raise SystemExit(f"no site-packages under {venv}")
    out = []
    for dist in closure_from_venv(sites[0]):
        t0 = time.monotonic()
        w = repack(dist, cache, epoch)
        if time.monotonic() - t0 > 1:
            log(f"repacked {w.name} in {time.monotonic() - t0:.1f} s")
        out.append(w)
    return out


#: Their newest releases have no wheel for every target (aarch64: PySide6 6.8.1+ needs glibc 2.39,
#: 6.10+ has none), so ``--download`` lets pip pick the newest one the target can load.
PLATFORM_LIMITED = {"pyside6-essentials", "shiboken6"}


def tested_versions(venv: Path) -> dict[str, str]:
    """name → version of the runtime closure installed in ``venv`` (what the test suite ran)."""
    sites = list((venv / "lib").glob("python3*/site-packages"))
    if not sites:
        return {}
    return {_norm(d.metadata["Name"]): d.version for d in closure_from_venv(sites[0])}


def download_wheels(arch: str, cache: Path, venv: Path | None = None) -> list[Path]:
    """``pip download`` the runtime closure for ``arch``, held to the versions tested in ``venv``.

    Every package is constrained to the version installed in ``venv`` except PLATFORM_LIMITED ones,
    which get the newest release within pyproject's range that the target can load; each such
    difference is logged.  Wheels land in a directory of the cache keyed by the exact request, so
    wheels of an earlier, different request never leak into the package.
    """
    reqs = list(project_metadata()["project"]["dependencies"])  # type: ignore[index]
    tested = tested_versions(venv) if venv else {}
    constraints = sorted(f"{n}=={v}" for n, v in tested.items() if n not in PLATFORM_LIMITED)
    key = hashlib.sha256("\n".join([arch, *reqs, *constraints]).encode()).hexdigest()[:16]
    dest = cache / f"download-{key}"
    done = dest / ".complete"
    if not done.exists():
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        cfile = dest / "constraints.txt"
        cfile.write_text("".join(c + "\n" for c in constraints))
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", "3.11",
               "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none", "-d", str(dest),
               "-c", str(cfile)]
        for plat in PIP_PLATFORMS[arch] + ["any"]:
            cmd += ["--platform", plat]
        subprocess.run(cmd + reqs, check=True)
        done.touch()
    wheels = sorted(dest.glob("*.whl"))
    for w in wheels:
        name, version = _norm(w.name.split("-")[0]), w.name.split("-")[1]
        if tested.get(name) and tested[name] != version:
            log(f"{arch}: {name} {version} (the tests ran {tested[name]}): newest release this target can load")
    return wheels


# ------------------------------------------------------------------ staging
def _debian_version(version: str, revision: str) -> str:
    return f"{version}-{revision}"


def _install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _text(dest: Path, text: str, mode: int = 0o644) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    dest.chmod(mode)


def stage(staging: Path, wheels: list[Path], project_wheel: Path, version: str, arch: str) -> None:
    """Lay out the package tree under ``staging`` (DEBIAN/ + filesystem)."""
    opt = staging / "opt" / PACKAGE
    wdir = opt / "wheels"
    wdir.mkdir(parents=True)
    lock = []
    for w in sorted({*wheels, project_wheel}, key=lambda p: p.name):
        shutil.copyfile(w, wdir / w.name)
        (wdir / w.name).chmod(0o644)
        digest = hashlib.sha256(w.read_bytes()).hexdigest()
        lock.append(f"./{w.name} --hash=sha256:{digest}")
    _text(wdir / "requirements.lock", "# bundled wheels, installed by postinst with --require-hashes\n"
          + "\n".join(lock) + "\n")
    _text(opt / "VERSION", version + "\n")
    _install(HERE / "lib" / "upgrade_db.py", opt / "lib" / "upgrade_db.py", 0o755)
    _install(HERE / "lib" / "forecourt-kiosk", opt / "lib" / "forecourt-kiosk", 0o755)
    _install(HERE / "bin" / "forecourt", staging / "usr" / "bin" / "forecourt", 0o755)
    _install(HERE / "systemd" / "forecourt-agent.service",
             staging / "usr" / "lib" / "systemd" / "system" / "forecourt-agent.service", 0o644)
    _install(HERE / "systemd" / "forecourt-ui.service",
             staging / "usr" / "lib" / "systemd" / "user" / "forecourt-ui.service", 0o644)
    _install(HERE / "udev" / "61-forecourt-serial.rules",
             staging / "usr" / "lib" / "udev" / "rules.d" / "61-forecourt-serial.rules", 0o644)
    _install(HERE / "kiosk" / "com.forecourt.Kiosk.desktop",
             staging / "etc" / "xdg" / "autostart" / "com.forecourt.Kiosk.desktop", 0o644)
    share = staging / "usr" / "share" / PACKAGE
    _install(HERE / "config" / "station.toml.example", share / "station.toml.example", 0o644)
    _install(HERE / "config" / "ui.env", share / "ui.env.example", 0o644)
    doc = staging / "usr" / "share" / "doc" / PACKAGE
    _install(HERE / "README.md", doc / "README.packaging.md", 0o644)
    if (ROOT / "docs" / "install.md").exists():
        _install(ROOT / "docs" / "install.md", doc / "install.md", 0o644)
    for ex in sorted((HERE / "examples").iterdir()):
        _install(ex, doc / "examples" / ex.name, 0o644)
    _text(doc / "copyright", "Forecourt station edge agent. Proprietary.\n"
          "Bundled wheels keep their own licenses (see each wheel's .dist-info).\n")

    deb = staging / "DEBIAN"
    deb.mkdir()
    size_kib = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) // 1024 + 1
    control = {
        "Package": PACKAGE,
        "Version": version,
        "Architecture": arch,
        "Maintainer": "Forecourt team <forecourt@example.com>",
        "Installed-Size": str(size_kib),
        "Depends": ", ".join(DEPENDS),
        "Recommends": ", ".join(RECOMMENDS),
        "Section": "misc",
        "Priority": "optional",
        "Description": "Fuel-station edge agent: pumps, checkout, dual-screen kiosk, trade-center sync\n"
                       " Drives the dispensers over RS-485 (DART), keeps every sale in SQLite when the\n"
                       " network is gone, serves the cashier and customer screens and syncs with the\n"
                       " trade center. Installs its own Python environment from bundled wheels.",
    }
    _text(deb / "control", "".join(f"{k}: {v}\n" for k, v in control.items()))
    conffiles = sorted("/" + p.relative_to(staging).as_posix() for p in (staging / "etc").rglob("*") if p.is_file())
    _text(deb / "conffiles", "".join(c + "\n" for c in conffiles))
    for script in ("postinst", "prerm", "postrm"):
        _install(HERE / "debian" / script, deb / script, 0o755)
    md5 = []
    for f in sorted(p for p in staging.rglob("*") if p.is_file() and "DEBIAN" not in p.relative_to(staging).parts):
        md5.append(f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.relative_to(staging).as_posix()}")  # noqa: S324
    _text(deb / "md5sums", "\n".join(md5) + "\n")


def normalize(staging: Path, epoch: int) -> None:
    for p in sorted(staging.rglob("*"), reverse=True):
        if p.is_dir():
            p.chmod(0o755)
        os.utime(p, (epoch, epoch), follow_symlinks=False)
    os.utime(staging, (epoch, epoch))


def dpkg_build(staging: Path, out: Path, compression: str, level: int | None, epoch: int) -> None:
    cmd = ["dpkg-deb", "--root-owner-group", f"-Z{compression}"]
    if level is not None:
        cmd.append(f"-z{level}")
    cmd += ["--build", str(staging), str(out)]
    subprocess.run(cmd, check=True, env=dict(os.environ, SOURCE_DATE_EPOCH=str(epoch)),
                   stdout=subprocess.DEVNULL)


def build(args: argparse.Namespace) -> Path:
    epoch = source_date_epoch()
    proj = project_metadata()["project"]
    version = args.version or _debian_version(str(proj["version"]), args.revision)  # type: ignore[index]
    arch = args.arch or subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                                       check=True).stdout.strip()
    out_dir = Path(args.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache).resolve() / arch
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.wheels:
        wheels = sorted(Path(args.wheels).glob("*.whl"))
    elif args.download:
        wheels = download_wheels(arch, cache, Path(args.from_venv).resolve())
    elif args.no_deps:
        wheels = []
    else:
        host = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
        if arch != host:
            raise SystemExit(f"--from-venv repacks {host} wheels; use --download for {arch}")
        wheels = wheels_from_venv(Path(args.from_venv).resolve(), cache, epoch)
    wheels = [w for w in wheels if not w.name.startswith(f"{_escape(PACKAGE)}-")]
    log(f"{len(wheels)} dependency wheels ready in {time.monotonic() - t0:.1f} s")
    with tempfile.TemporaryDirectory(prefix="forecourt-deb-") as tmp:
        tmpd = Path(tmp)
        project_wheel = build_project_wheel(tmpd, epoch)
        staging = tmpd / "root"
        staging.mkdir()
        stage(staging, wheels, project_wheel, version, arch)
        normalize(staging, epoch)
        out = out_dir / f"{PACKAGE}_{version}_{arch}.deb"
        t1 = time.monotonic()
        dpkg_build(staging, out, args.compression, args.level, epoch)
        log(f"dpkg-deb {args.compression} in {time.monotonic() - t1:.1f} s")
    log(f"built {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="build_deb.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default=str(ROOT / "dist"), help="where the .deb goes (default dist/)")
    p.add_argument("--arch", help="Debian architecture (default: this machine's; amd64 or arm64)")
    p.add_argument("--version", help="full Debian version (default: pyproject version + -REVISION)")
    p.add_argument("--revision", default="1", help="Debian revision (default 1)")
    p.add_argument("--cache", default=str(ROOT / "build" / "wheels"), help="wheel cache (default build/wheels)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from-venv", default=str(ROOT / ".venv"), help="repack wheels from this venv (default)")
    src.add_argument("--download", action="store_true", help="pip download wheels for --arch (needs PyPI)")
    src.add_argument("--wheels", help="use the wheels in this directory")
    src.add_argument("--no-deps", action="store_true", help="bundle only the project wheel (layout tests)")
    p.add_argument("--compression", default="gzip", choices=["gzip", "xz", "zstd", "none"],
                   help="dpkg-deb -Z (default gzip: the wheels are compressed already; xz saves <1 %% in 50 s)")
    p.add_argument("--level", type=int, help="compression level (dpkg-deb -z)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    out = build(parse_args(argv))
    sys.stdout.write(f"{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
