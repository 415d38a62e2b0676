"""The full ``forecourt doctor``: local checks from :mod:`agent.doctor` plus network and pump-bus probes.

``agent/`` may not import httpx or the serial drivers, so the checks that need them live here and
are handed to :func:`agent.doctor.run_checks` as probes:

* **center**: HTTP GET ``center.url`` (short timeout); any HTTP answer counts as reachable.  The
  same answer's ``Date`` header gives the **clock skew**.  Unreachable is a WARN: the station keeps
  selling offline and the outbox catches up later.
* **broker**: a plain TCP connect to ``center.mqtt_host:mqtt_port`` (WARN when refused).
* **pumps**: when the agent's API answers, ``GET /api/v1/pumps`` (the agent holds the ports); else,
  per line, a DART bus scan of the configured addresses with the line's settings
  (:func:`drivers.discovery.scan_bus`), unless another process holds the device (then WARN).
* **package**: on a device installed from the .deb, dpkg's state of ``forecourt`` — anything but
  "install ok installed" (a failed upgrade leaves it half-configured, and apt refuses to work
  until it is fixed) is a FAIL that says how to recover.
* **certificates**: files named in the config (``center.ca_file/cert_file`` when the config has
  them) and every ``*.pem``/``*.crt`` in ``<config dir>/certs/``.

``add_arguments(parser)`` / ``run(args) -> int`` are mounted by main.py as ``forecourt doctor``;
``python -m launcher.doctor_checks`` works too.  Exit code 1 when any line is FAIL.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.doctor import (
    CheckResult,
    Probe,
    check_certificate,
    check_clock_skew,
    exit_code,
    format_result,
    run_checks,
)

if TYPE_CHECKING:
    from agent.config import StationConfig

__all__ = ["add_arguments", "build_probes", "main", "port_holders", "run"]

DEFAULT_CONFIG = "/etc/forecourt/station.toml"


# ------------------------------------------------------------------ package
def check_package(package: str = "forecourt") -> list[CheckResult]:
    """dpkg's view of the installed package; nothing on a machine that runs from a source tree."""
    if shutil.which("dpkg-query") is None:
        return []
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\t${Version}", package],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0 or "\t" not in proc.stdout:
        return []  # not installed as a package
    status, version = proc.stdout.split("\t", 1)
    state = status.split()[-1] if status.split() else status
    if status == "install ok installed":
        return [CheckResult("package", "OK", f"{package} {version} installed")]
    if state == "config-files":
        return []  # removed, data kept: nothing runs from the package
    return [CheckResult("package", "FAIL", f"{package} {version} is {state}: its last install did not finish",
                        "read that install's output (MIGRATION FAILED: the previous program runs on the "
                        "restored database); reinstall the previous package with dpkg -i, then call support")]


# ------------------------------------------------------------------ network
def _tls(cfg: StationConfig, config_path: str | None) -> tuple[Any, CheckResult | None]:
    """The agent's own TLS context for the center (same files, same rules), or a FAIL naming the key."""
    from sync.tls import TlsConfigError, center_tls

    base = Path(config_path).resolve().parent if config_path else None
    try:
        return center_tls(cfg.center, base), None
    except TlsConfigError as exc:
        return None, CheckResult("center TLS", "FAIL", str(exc),
                                 "put the files named in [center] in place (forecourt setup copies them to certs/)")


def check_center(cfg: StationConfig, timeout_s: float = 3.0, config_path: str | None = None) -> list[CheckResult]:
    """GET the center URL with the agent's TLS settings (CA, client certificate); its Date gives the skew."""
    import httpx

    url = cfg.center.url
    ctx, bad = _tls(cfg, config_path)
    if bad is not None:
        return [bad]
    started = time.monotonic()
    try:
        resp = httpx.get(url, timeout=timeout_s, verify=ctx or True, follow_redirects=False)
    except httpx.HTTPError as exc:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
            return [CheckResult("center", "FAIL", f"{url}: TLS refused: {text}",
                                "center.ca_file must be the CA that signed the center's certificate, and the "
                                "station certificate (cert_file/key_file) one the center issued")]
        return [CheckResult("center", "WARN", f"{url} not reachable: {text}",
                            "check network/DNS/firewall to the trade center; sales queue in the outbox meanwhile")]
    local = datetime.now(UTC)
    ms = (time.monotonic() - started) * 1000
    out = [CheckResult("center", "OK", f"{url} answered HTTP {resp.status_code} in {ms:.0f} ms"
                       + (" over TLS" if url.startswith("https://") else ""))]
    out.append(check_clock_skew(resp.headers.get("date"), local, source="center"))
    return out


def check_broker(cfg: StationConfig, timeout_s: float = 3.0, config_path: str | None = None) -> CheckResult:
    """TCP connect to the broker; with MQTT over TLS also the handshake with the station certificate."""
    import ssl

    host, port = cfg.center.mqtt_host, cfg.center.mqtt_port
    ctx = None
    if cfg.center.use_mqtt_tls:
        ctx, bad = _tls(cfg, config_path)
        if bad is not None:
            return bad
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if ctx is not None:
                with ctx.wrap_socket(sock, server_hostname=host) as tls:
                    version = tls.version()
                return CheckResult("broker", "OK", f"MQTT {host}:{port} TLS handshake ok ({version})")
    except ssl.SSLError as exc:
        return CheckResult("broker", "FAIL", f"MQTT {host}:{port}: TLS refused: {exc}",
                           "center.ca_file must sign the broker's certificate; the station certificate must be "
                           "one the broker trusts")
    except OSError as exc:
        return CheckResult("broker", "WARN", f"MQTT {host}:{port} not reachable: {exc}",
                           "systemctl status mosquitto (local broker) or check the network to the center's broker")
    return CheckResult("broker", "OK", f"MQTT {host}:{port} accepts connections")


def port_holders(device: str) -> list[int]:
    """PIDs holding ``device`` open (scans /proc/*/fd; processes we may not inspect are skipped)."""
    try:
        target = os.path.realpath(device)
    except OSError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.path.realpath(fd) == target:
                    pids.append(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def api_base(cfg: StationConfig, api_url: str | None) -> str:
    """The running agent's API: ``https`` when the config gives it a certificate (a LAN API)."""
    if api_url:
        return api_url.rstrip("/")
    host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "::", "") else cfg.api.host
    scheme = "https" if cfg.api.tls_cert else "http"
    return f"{scheme}://{host}:{cfg.api.port}"


def api_verify(cfg: StationConfig, config_path: str) -> ssl.SSLContext | bool:
    """How to trust the agent's own API certificate from this machine: the configured ``tls_cert`` is
    the trust anchor (self-signed or not: partial chains are accepted) and the host name is not checked
    (the doctor calls it on loopback, which the LAN certificate does not name).  True without TLS."""
    if not cfg.api.tls_cert:
        return True
    cert = Path(cfg.api.tls_cert)
    if not cert.is_absolute():
        cert = Path(config_path).resolve().parent / cert
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


def _token(cfg: StationConfig, config_path: str) -> str | None:
    if cfg.api.token:
        return cfg.api.token
    p = Path(cfg.api.token_file)
    if not p.is_absolute():
        p = Path(config_path).resolve().parent / p
    try:
        return p.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def check_pumps_via_api(cfg: StationConfig, base: str, token: str | None,
                        verify: ssl.SSLContext | bool = True) -> list[CheckResult] | None:
    """Pump states from the running agent, or None when the agent does not answer."""
    import httpx

    try:
        httpx.get(base + "/health", timeout=2.0, verify=verify).raise_for_status()
    except httpx.HTTPError:
        return None
    if token is None:
        return [CheckResult("pumps", "WARN", "agent is running but its API token is not readable here",
                            "run the doctor as root (sudo forecourt doctor)")]
    try:
        resp = httpx.get(base + "/api/v1/pumps", headers={"Authorization": f"Bearer {token}"}, timeout=5.0,
                         verify=verify)
    except httpx.HTTPError as exc:
        return [CheckResult("pumps", "FAIL", f"agent API {base}: {exc}", "journalctl -u forecourt-agent")]
    if resp.status_code == 503:
        return [CheckResult("pumps", "WARN", "the agent runs without pump lines (--no-pumps)")]
    if resp.status_code != 200:
        return [CheckResult("pumps", "FAIL", f"agent API answered HTTP {resp.status_code} for /api/v1/pumps",
                            "check the API token; journalctl -u forecourt-agent")]
    states = {int(p["pump_id"]): p for p in resp.json()}
    out = []
    for line in cfg.lines:
        for pump in line.pumps:
            snap = states.get(pump.pump_id)
            name = f"pump {pump.pump_id} ({line.name} {pump.address:#04x})"
            if snap is None:
                out.append(CheckResult(name, "FAIL", "unknown to the running agent", "restart the agent"))
            elif snap.get("state") == "offline":
                out.append(CheckResult(name, "FAIL", "offline (no answer on the bus)",
                                       "check the pump's power, its address and the RS-485 wiring (A/B, termination)"))
            else:
                extra = f", alarm {snap['alarm']}" if snap.get("alarm") else ""
                out.append(CheckResult(name, "OK" if not extra else "WARN", f"{snap.get('state')}{extra} (via agent)"))
    return out


def check_pumps_via_bus(cfg: StationConfig) -> list[CheckResult]:
    from drivers.discovery import scan_bus

    out = []
    for line in cfg.lines:
        if line.protocol != "dart":
            out.append(CheckResult(f"line {line.name}", "WARN",
                                   f"the bus probe speaks DART only; {line.protocol} line not probed",
                                   "start the agent and run the doctor again (it then asks the agent)"))
            continue
        if "://" not in line.url:
            holders = port_holders(line.url)
            if holders:
                out.append(CheckResult(f"line {line.name}", "WARN",
                                       f"{line.url} is held by pid {', '.join(map(str, holders))}; not probed",
                                       "stop that program, or start the agent and run the doctor again"))
                continue
        wanted = [p.address for p in line.pumps]
        res = scan_bus(line.url, line.baudrate, wanted, timeout_s=max(0.1, line.response_timeout_s * 2))
        if res.error:
            out.append(CheckResult(f"line {line.name}", "FAIL", res.error,
                                   "check the adapter is plugged in (ls -l /dev/forecourt/) and in group dialout"))
            continue
        out.append(CheckResult(f"line {line.name}", "OK" if res.answered else "FAIL",
                               f"{line.url} {line.baudrate} 8O1: {len(res.answered)}/{len(wanted)} pumps answer",
                               "" if res.answered else "check wiring (A/B swapped?), baud rate and pump power"))
        for pump in line.pumps:
            name = f"pump {pump.pump_id} ({line.name} {pump.address:#04x})"
            if pump.address in res.answered:
                out.append(CheckResult(name, "OK", f"answers POLL ({res.answered[pump.address]})"))
            else:
                why = f"; noise: {res.noise[pump.address]}" if pump.address in res.noise else ""
                out.append(CheckResult(name, "FAIL", f"no answer{why}",
                                       "check the pump's address setting, power and wiring"))
    return out


def check_pumps(cfg: StationConfig, config_path: str, api_url: str | None) -> list[CheckResult]:
    if not cfg.lines:
        return [CheckResult("pumps", "WARN", "no pump lines configured", "run `forecourt setup`")]
    try:
        verify = api_verify(cfg, config_path)
    except (OSError, ssl.SSLError) as exc:
        return [CheckResult("api tls", "FAIL", f"[api] tls_cert {cfg.api.tls_cert}: {exc}",
                            "point tls_cert at the PEM certificate the agent serves")]
    via_api = check_pumps_via_api(cfg, api_base(cfg, api_url), _token(cfg, config_path), verify)
    return via_api if via_api is not None else check_pumps_via_bus(cfg)


# ------------------------------------------------------------------ certificates
def cert_files(cfg: StationConfig, config_path: str) -> list[tuple[str, Path]]:
    base = Path(config_path).resolve().parent
    seen: dict[Path, str] = {}
    for key in ("ca_file", "cert_file"):
        value = getattr(cfg.center, key)
        if value:
            p = Path(value)
            seen[p if p.is_absolute() else base / p] = key
    certs = base / "certs"
    if certs.is_dir():
        for p in sorted(certs.iterdir()):
            if p.suffix in (".pem", ".crt") and p not in seen and "key" not in p.stem:
                seen[p] = p.name
    return [(label, p) for p, label in seen.items()]


def check_certificates(cfg: StationConfig, config_path: str) -> list[CheckResult]:
    return [check_certificate(label, p) for label, p in cert_files(cfg, config_path)]


def build_probes(config_path: str | None, api_url: str | None, *, network: bool = True,
                 pumps: bool = True) -> list[Probe]:
    """The launcher's probes for :func:`agent.doctor.run_checks`."""
    package: Probe = lambda _cfg: check_package()  # noqa: E731 - a probe is a callable of the config
    if not config_path:
        return [package]
    path = config_path

    def _wrap(name: str, fn: Callable[[StationConfig], list[CheckResult]]) -> Probe:
        def probe(cfg: StationConfig | None) -> list[CheckResult]:
            return fn(cfg) if cfg is not None else []
        probe.__name__ = name
        return probe

    probes = [package, _wrap("certificates", lambda c: check_certificates(c, path))]
    if network:
        probes.append(_wrap("center", lambda c: check_center(c, config_path=path)))
        probes.append(_wrap("broker", lambda c: [check_broker(c, config_path=path)]))
    if pumps:
        probes.append(_wrap("pumps", lambda c: check_pumps(c, path, api_url)))
    return probes


# ------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help=f"station config TOML (default {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("--db", help="database path (default: from the config)")
    parser.add_argument("--api", help="local API URL of a running agent (default: from the config)")
    parser.add_argument("--no-network", action="store_true", help="skip the center/broker/clock checks")
    parser.add_argument("--no-pumps", action="store_true", help="skip the pump checks")


def run(args: argparse.Namespace) -> int:
    config = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    probes = build_probes(config, args.api, network=not args.no_network, pumps=not args.no_pumps)
    results = run_checks(config_path=config, db_path=args.db, api_url=args.api, probes=probes)
    for r in results:
        print(format_result(r))
    counts = {level: sum(r.level == level for r in results) for level in ("OK", "WARN", "FAIL")}
    print(f"-- {counts['OK']} OK, {counts['WARN']} WARN, {counts['FAIL']} FAIL")
    return exit_code(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forecourt doctor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
