"""``forecourt setup``: write a station config on a new device, interactively or from flags.

The wizard asks for (or takes as flags) the station id, the trade center's URL and MQTT broker,
the certificates, the grades and prices, the pump lines (serial ports, found with
:func:`drivers.discovery.list_serial_ports`), scans each line for pumps
(:func:`drivers.discovery.scan_bus`, DART POLL on 0x50..0x6F), maps each pump's nozzles to grades
and gun numbers, tests each connection, and writes the config.

Guarantees:

* the document is validated with :func:`agent.config.parse_config` **before** anything is written,
  and the written TOML is read back and validated again before it replaces the old file;
* the file is written to a temporary file in the same directory, fsynced, then renamed: a crash
  never leaves half a config; the previous file is kept as ``station.toml.bak``;
* the config is 0640 (group ``forecourt`` when that group exists, so the service can read it),
  the private key 0600 owned by the service user; nothing secret goes into the TOML itself.

Non-interactive example (what the package test runs)::

    forecourt setup --yes --config /etc/forecourt/station.toml --station-id S001 \\
        --center-url https://center.example.com --grade 92:92#汽油:789 --grade 95:95#汽油:839 \\
        --line bus1=/dev/forecourt/bus1 --scan --nozzle-grades 92,95

Limits: the config schema has no TLS keys yet, so certificates are installed into
``<config dir>/certs/`` (``ca.pem``, ``client.pem``, ``client.key``) and written into the config
only when ``CenterConfig`` knows ``ca_file``/``cert_file``/``key_file``.  Never scan a line the
running agent holds: stop the service first (``systemctl stop forecourt-agent``).
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import CenterConfig, ConfigError, StationConfig, parse_config

__all__ = ["WizardError", "add_arguments", "build_document", "main", "run", "to_toml", "write_config"]

DEFAULT_CONFIG = "/etc/forecourt/station.toml"
DEFAULT_DB = "/var/lib/forecourt/forecourt.db"
DEFAULT_TOKEN_FILE = "/etc/forecourt/api-token"
SERVICE_USER = "forecourt"


class WizardError(Exception):
    """Bad input: the message says what to fix.  Nothing was written."""


# ------------------------------------------------------------------ TOML out
def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(doc: dict[str, Any]) -> str:
    """Serialize the config document (tables, arrays of tables one level deep, inline nozzles)."""
    out: list[str] = ["# Forecourt station config, written by `forecourt setup`.",
                      "# Check it with: forecourt config check FILE", ""]

    def table(prefix: str, data: dict[str, Any], header: str) -> None:
        scalars = {k: v for k, v in data.items() if not _is_tables(v) and not isinstance(v, dict)}
        out.append(header)
        out.extend(f"{k} = {_value(v)}" for k, v in scalars.items())
        out.append("")
        for k, v in data.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v, f"[{prefix}.{k}]")
            elif _is_tables(v):
                for item in v:
                    table(f"{prefix}.{k}", item, f"[[{prefix}.{k}]]")

    for key, val in doc.items():
        if isinstance(val, dict):
            table(key, val, f"[{key}]")
        elif _is_tables(val):
            for item in val:
                table(key, item, f"[[{key}]]")
        else:
            out.insert(3, f"{key} = {_value(val)}")
    return "\n".join(out)


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v) and not _inline(v)


def _inline(v: list[Any]) -> bool:
    """Nozzle lists stay inline (``nozzles = [{ ... }]``) — they have only scalar values."""
    return all(all(not isinstance(x, (dict, list)) for x in item.values()) and "number" in item for item in v)


# ------------------------------------------------------------------ model of the answers
@dataclass
class Line:
    name: str
    url: str
    baudrate: int = 9600
    addresses: list[int] = field(default_factory=list)


@dataclass
class Answers:
    station_id: str = ""
    station_name: str = ""
    center_url: str = "http://127.0.0.1:8650"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    api_port: int = 8640
    db_path: str = DEFAULT_DB
    token_file: str = DEFAULT_TOKEN_FILE
    grades: list[tuple[str, str, int]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    #: grade code per logical nozzle, for every pump without an explicit mapping
    nozzle_grades: list[str] = field(default_factory=list)
    #: (pump_id, logical) -> grade
    nozzle_map: dict[tuple[int, int], str] = field(default_factory=dict)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def build_document(a: Answers) -> dict[str, Any]:
    """The config document for ``a`` (pump ids and gun numbers counted from 1 in line/address order)."""
    doc: dict[str, Any] = {
        "station": {"id": a.station_id, **({"name": a.station_name} if a.station_name else {})},
        "api": {"host": "127.0.0.1", "port": a.api_port, "token_file": a.token_file},
        "database": {"path": a.db_path},
        "center": {"url": a.center_url, "mqtt_host": a.mqtt_host, "mqtt_port": a.mqtt_port},
        "grades": [{"code": c, "name": n, "price_fen": p} for c, n, p in a.grades],
    }
    fields = CenterConfig.model_fields
    for key, value in (("ca_file", a.ca_file), ("cert_file", a.cert_file), ("key_file", a.key_file)):
        if value and key in fields:
            doc["center"][key] = value
    lines, pump_id, gun = [], 1, 1
    for line in a.lines:
        pumps = []
        for addr in sorted(line.addresses):
            grades = [a.nozzle_map[(pump_id, lg)] for lg in range(1, 16) if (pump_id, lg) in a.nozzle_map]
            if not grades:
                grades = list(a.nozzle_grades)
            if not grades:
                raise WizardError(f"pump {pump_id} (address {addr:#04x}): no nozzle grades; give --nozzle-grades")
            nozzles = []
            for logical, code in enumerate(grades, start=1):
                nozzles.append({"number": gun, "logical": logical, "grade": code})
                gun += 1
            pumps.append({"pump_id": pump_id, "address": addr, "nozzles": nozzles})
            pump_id += 1
        if not pumps:
            raise WizardError(f"line {line.name}: no pumps (scan found none; give --pump-addresses)")
        lines.append({"name": line.name, "protocol": "dart", "url": line.url, "baudrate": line.baudrate,
                      "pumps": pumps})
    if lines:
        doc["lines"] = lines
    return doc


def validate(doc: dict[str, Any], source: str = "setup") -> StationConfig:
    """parse_config on the document, then on the TOML text it becomes (what the agent will read)."""
    parse_config(doc, source)
    return parse_config(tomllib.loads(to_toml(doc)), source)


# ------------------------------------------------------------------ writing
def _service_ids() -> tuple[int | None, int | None]:
    try:
        uid = pwd.getpwnam(SERVICE_USER).pw_uid
    except KeyError:
        uid = None
    try:
        gid = grp.getgrnam(SERVICE_USER).gr_gid
    except KeyError:
        gid = None
    return uid, gid


def _atomic_write(path: Path, data: bytes, mode: int, owner: tuple[int | None, int | None] = (None, None)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0 and (owner[0] is not None or owner[1] is not None):
            os.fchown(fd, -1 if owner[0] is None else owner[0], -1 if owner[1] is None else owner[1])
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def install_certs(a: Answers, config_path: Path) -> Answers:
    """Copy the given certificate files into ``<config dir>/certs/``; the answers then name the copies."""
    certs = config_path.parent / "certs"
    uid, gid = _service_ids()
    out = {}
    for key, name, mode, owner in (("ca_file", "ca.pem", 0o640, (None, gid)),
                                   ("cert_file", "client.pem", 0o640, (None, gid)),
                                   ("key_file", "client.key", 0o600, (uid, gid))):
        src = getattr(a, key)
        if not src:
            continue
        p = Path(src)
        if not p.is_file():
            raise WizardError(f"{key}: {src} is not a file")
        dest = certs / name
        if p.resolve() != dest.resolve():
            certs.mkdir(parents=True, exist_ok=True)
            os.chmod(certs, 0o750)  # noqa: S103 - group forecourt must traverse to read its cert
            if os.geteuid() == 0 and gid is not None:
                os.chown(certs, -1, gid)
            _atomic_write(dest, p.read_bytes(), mode, owner)
        out[key] = str(dest)
    for k, v in out.items():
        setattr(a, k, v)
    return a


def write_config(doc: dict[str, Any], path: Path) -> StationConfig:
    """Validate, then atomically replace ``path`` (old file kept as ``.bak``); returns the config."""
    cfg = validate(doc, str(path))
    text = to_toml(doc)
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".bak"))
    _, gid = _service_ids()
    _atomic_write(path, text.encode("utf-8"), 0o640 if gid is not None else 0o600, (None, gid))
    cfg2 = parse_config(tomllib.loads(path.read_text(encoding="utf-8")), str(path))
    assert cfg2 == cfg
    return cfg


# ------------------------------------------------------------------ udev names
def udev_rules(lines: list[Line], ports: list[Any]) -> tuple[str, list[str]]:
    """Rules naming each line's USB adapter ``/dev/forecourt/<line name>``; returns (text, notes).

    An adapter with a USB serial number is matched by vendor/product/serial (it may move between
    sockets); one without is matched by the USB socket it is plugged into (``KERNELS``).  Lines
    whose port is not a USB adapter are left alone (noted).  ``ports`` are ``PortInfo``s.
    """
    by_dev = {os.path.realpath(p.device): p for p in ports}
    rules = ["# Written by `forecourt setup`: stable names for the pump lines' USB adapters.",
             "# Apply: udevadm control --reload-rules && udevadm trigger --subsystem-match=tty"]
    notes = []
    for line in lines:
        if "://" in line.url:
            continue
        port = by_dev.get(os.path.realpath(line.url))
        if port is None or port.vid is None:
            notes.append(f"{line.name}: {line.url} is not a USB adapter; no udev name")
            continue
        if port.serial_number:
            match = (f'ENV{{ID_VENDOR_ID}}=="{port.vid:04x}", ENV{{ID_MODEL_ID}}=="{port.pid or 0:04x}", '
                     f'ENV{{ID_SERIAL_SHORT}}=="{port.serial_number}"')
        elif port.location:
            match = f'KERNELS=="{port.location}"'
            notes.append(f"{line.name}: adapter has no serial number; named by its USB socket {port.location}")
        else:
            notes.append(f"{line.name}: {line.url} has neither serial number nor location; no udev name")
            continue
        rules.append(f'SUBSYSTEM=="tty", {match}, SYMLINK+="forecourt/{line.name}"')
        line.url = f"/dev/forecourt/{line.name}"
    return "\n".join(rules) + "\n", notes


# ------------------------------------------------------------------ connection tests
def _abs(path: str | None) -> str | None:
    """A file named on the command line, relative to where the technician typed it."""
    return str(Path(path).resolve()) if path else None


def probe_connections(cfg: StationConfig) -> list[tuple[bool, str]]:
    """The center (HTTP GET) and the broker (TCP, plus the TLS handshake with the station certificate
    when MQTT runs over TLS), with exactly the settings the agent will use — the doctor's own checks."""
    from launcher.doctor_checks import check_broker, check_center

    results = [check_center(cfg)[0], check_broker(cfg)]
    return [(r.level == "OK", f"{r.name}: {r.message}") for r in results]


def _scan(line: Line, say: Callable[[str], None], timeout_s: float) -> list[int]:
    from drivers.discovery import scan_bus

    say(f"scanning {line.url} at {line.baudrate} 8O1 for DART pumps 0x50..0x6F …")
    res = scan_bus(line.url, line.baudrate, timeout_s=timeout_s)
    if res.error:
        raise WizardError(f"line {line.name}: {res.error}")
    found = res.addresses()
    say(f"  {len(found)} pump(s) answer: {', '.join(f'{x:#04x}' for x in found) or 'none'} "
        f"({res.duration_s:.1f} s)")
    return found


# ------------------------------------------------------------------ flags
def _grade(text: str) -> tuple[str, str, int]:
    try:
        code, name, price = text.split(":")
        return code, name, int(price)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CODE:NAME:PRICE_FEN, got {text!r}") from None


def _line(text: str) -> Line:
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"expected NAME=URL[@BAUD], got {text!r}")
    url, at, baud = rest.rpartition("@") if "@" in rest and rest.rsplit("@", 1)[1].isdigit() else (rest, "", "")
    return Line(name, url, int(baud) if at else 9600)


def _addr(text: str) -> int:
    return int(text, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"config file to write (default {DEFAULT_CONFIG})")
    parser.add_argument("--yes", "--non-interactive", dest="yes", action="store_true",
                        help="take everything from flags, ask nothing (for scripts)")
    parser.add_argument("--list-ports", action="store_true", help="list serial ports and exit")
    parser.add_argument("--station-id")
    parser.add_argument("--station-name", default="")
    parser.add_argument("--center-url")
    parser.add_argument("--mqtt-host")
    parser.add_argument("--mqtt-port", type=int)
    parser.add_argument("--ca-file", help="trade center CA certificate (PEM)")
    parser.add_argument("--cert-file", help="this station's client certificate (PEM)")
    parser.add_argument("--key-file", help="this station's private key (PEM); installed 0600")
    parser.add_argument("--api-port", type=int, default=8640)
    parser.add_argument("--db-path", default=DEFAULT_DB)
    parser.add_argument("--token-file", default=DEFAULT_TOKEN_FILE)
    parser.add_argument("--grade", type=_grade, action="append", default=[], metavar="CODE:NAME:PRICE_FEN")
    parser.add_argument("--line", type=_line, action="append", default=[], metavar="NAME=URL[@BAUD]",
                        help="a pump line, e.g. bus1=/dev/forecourt/bus1@9600 or bus1=socket://host:port")
    parser.add_argument("--scan", action="store_true", help="POLL 0x50..0x6F on each line; use who answers")
    parser.add_argument("--scan-timeout", type=float, default=0.15, help="seconds per address")
    parser.add_argument("--pump-addresses", type=_addr, nargs="+", default=[], metavar="ADDR",
                        help="pump addresses for every --line instead of a scan (e.g. 0x50 0x51)")
    parser.add_argument("--nozzle-grades", default="", help="grade per logical nozzle for every pump, e.g. 92,95")
    parser.add_argument("--nozzle", action="append", default=[], metavar="PUMP.LOGICAL=GRADE",
                        help="one nozzle's grade, overriding --nozzle-grades for that pump")
    parser.add_argument("--udev-rules", metavar="FILE",
                        help="also write udev rules naming each line's USB adapter /dev/forecourt/<line> "
                             "(e.g. /etc/udev/rules.d/62-forecourt-buses.rules) and use those names")
    parser.add_argument("--test", action="store_true", help="test center and broker connections (flags mode)")
    parser.add_argument("--require-connections", action="store_true",
                        help="with --test: refuse to write when a connection test fails")


def answers_from_args(args: argparse.Namespace) -> Answers:
    a = Answers(station_id=args.station_id or "", station_name=args.station_name,
                center_url=args.center_url or Answers.center_url,
                mqtt_host=args.mqtt_host or Answers.mqtt_host, mqtt_port=args.mqtt_port or Answers.mqtt_port,
                api_port=args.api_port, db_path=args.db_path, token_file=args.token_file,
                grades=list(args.grade), lines=list(args.line),
                nozzle_grades=[g for g in args.nozzle_grades.split(",") if g],
                ca_file=_abs(args.ca_file), cert_file=_abs(args.cert_file), key_file=_abs(args.key_file))
    for spec in args.nozzle:
        try:
            left, grade = spec.split("=")
            pump, logical = (int(x) for x in left.split("."))
        except ValueError:
            raise WizardError(f"--nozzle {spec!r}: expected PUMP.LOGICAL=GRADE, e.g. 3.1=92") from None
        a.nozzle_map[(pump, logical)] = grade
    for line in a.lines:
        line.addresses = list(args.pump_addresses)
    return a


# ------------------------------------------------------------------ interactive
class _Prompt:
    def __init__(self, ask: Callable[[str], str], say: Callable[[str], None]) -> None:
        self.ask, self.say = ask, say

    def text(self, question: str, default: str = "", *, required: bool = True) -> str:
        while True:
            got = self.ask(f"{question}{f' [{default}]' if default else ''}: ").strip() or default
            if got or not required:
                return got
            self.say("  (required)")

    def integer(self, question: str, default: int) -> int:
        while True:
            got = self.text(question, str(default))
            try:
                return int(got, 0)
            except ValueError:
                self.say(f"  {got!r} is not a number")

    def yes(self, question: str, default: bool = True) -> bool:
        got = self.text(question + (" (Y/n)" if default else " (y/N)"), required=False).lower()
        return default if not got else got.startswith("y")


def interactive(a: Answers, p: _Prompt, scan_timeout: float) -> Answers:
    """Ask for everything not given as flags (flags become the defaults)."""
    from drivers.discovery import list_serial_ports

    p.say("Forecourt station setup — Enter keeps the value in [brackets].")
    a.station_id = p.text("Station id (letters, digits, - _)", a.station_id)
    a.station_name = p.text("Station name", a.station_name, required=False)
    a.center_url = p.text("Trade center URL", a.center_url)
    a.mqtt_host = p.text("MQTT broker host", a.mqtt_host)
    a.mqtt_port = p.integer("MQTT broker port", a.mqtt_port)
    a.ca_file = _abs(p.text("Center CA certificate file (empty: none)", a.ca_file or "", required=False) or None)
    a.cert_file = _abs(p.text("Station certificate file (empty: none)", a.cert_file or "", required=False) or None)
    a.key_file = _abs(p.text("Station private key file (empty: none)", a.key_file or "", required=False) or None)
    if not a.grades or not p.yes(f"Grades {[g[0] for g in a.grades]} — keep them?"):
        a.grades = []
        while True:
            code = p.text("Grade code (e.g. 92; empty to finish)", required=not a.grades)
            if not code:
                break
            a.grades.append((code, p.text("  name", f"{code}#"), p.integer("  price, fen per litre", 789)))
    ports = list_serial_ports()
    p.say("Serial ports:" if ports else "No serial ports found (USB adapter plugged in?).")
    for i, port in enumerate(ports, 1):
        p.say(f"  {i}. {port.label()}")
    if not a.lines:
        n = 1
        while p.yes(f"Add pump line bus{n}?", default=n == 1):
            dev = p.text("  port (number from the list, a device path or socket://host:port)")
            url = ports[int(dev) - 1].device if dev.isdigit() and 0 < int(dev) <= len(ports) else dev
            a.lines.append(Line(f"bus{n}", url, p.integer("  baud rate", 9600)))
            n += 1
    codes = [g[0] for g in a.grades]
    pump_id = 1
    for line in a.lines:
        if not line.addresses:
            if p.yes(f"Scan {line.url} for pumps now?"):
                line.addresses = _scan(line, p.say, scan_timeout)
            if not line.addresses:
                typed = p.text("  pump addresses (e.g. 0x50 0x51)")
                line.addresses = [int(x, 0) for x in typed.split()]
        for addr in sorted(line.addresses):
            if not any(k[0] == pump_id for k in a.nozzle_map):
                default = ",".join(a.nozzle_grades or codes[:2])
                got = p.text(f"Pump {pump_id} ({line.name} {addr:#04x}): grade per nozzle 1,2,… {codes}", default)
                for logical, code in enumerate(got.replace(" ", "").split(","), start=1):
                    a.nozzle_map[(pump_id, logical)] = code
            pump_id += 1
    return a


# ------------------------------------------------------------------ run
def run(args: argparse.Namespace, *, ask: Callable[[str], str] = input,
        say: Callable[[str], None] = print) -> int:
    """Exit codes: 0 written, 1 a test/scan failed (nothing written), 2 invalid answers (nothing written)."""
    if args.list_ports:
        from drivers.discovery import list_serial_ports

        for port in list_serial_ports():
            say(port.label())
        return 0
    path = Path(args.config)
    try:
        a = answers_from_args(args)
        if not args.yes:
            a = interactive(a, _Prompt(ask, say), args.scan_timeout)
        elif args.scan:
            for line in a.lines:
                if not line.addresses:
                    line.addresses = _scan(line, say, args.scan_timeout)
        doc = build_document(a)
        draft = validate(doc, str(path))  # before any file is touched
        test = args.test or (not args.yes and _Prompt(ask, say).yes("Test the center and broker connections?"))
        if test:
            results = probe_connections(draft)
            for ok, text in results:
                say(f"  [{'OK' if ok else 'FAIL'}] {text}")
            if args.require_connections and not all(ok for ok, _ in results):
                say("connection test failed: nothing written")
                return 1
        if not args.yes:
            say(to_toml(doc))
            if not _Prompt(ask, say).yes(f"Write {path}?"):
                say("nothing written")
                return 1
        rules = None
        if args.udev_rules:
            from drivers.discovery import list_serial_ports

            rules, notes = udev_rules(a.lines, list_serial_ports())
            for note in notes:
                say(f"  udev: {note}")
        doc = build_document(a)
        validate(doc, str(path))
        a = install_certs(a, path)
        if rules is not None:
            _atomic_write(Path(args.udev_rules), rules.encode(), 0o644)
            say(f"wrote {args.udev_rules}: udevadm control --reload-rules && udevadm trigger --subsystem-match=tty")
        cfg = write_config(build_document(a), path)
    except WizardError as exc:
        say(f"setup: {exc}")
        return 2
    except ConfigError as exc:
        say("setup: the answers do not make a valid config (nothing written):")
        for problem in exc.problems:
            say(f"  - {problem}")
        return 2
    except (EOFError, KeyboardInterrupt):
        say("\nsetup aborted: nothing written")
        return 1
    say(f"wrote {path}: station {cfg.station.id}, {len(cfg.lines)} line(s), {len(cfg.all_pumps())} pump(s), "
        f"{sum(len(p.nozzles) for p in cfg.all_pumps())} nozzle(s). Next: systemctl restart forecourt-agent; "
        "forecourt doctor")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forecourt setup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
