"""TLS to the trade center: one client context for its HTTPS API and its MQTT broker.

``client_context(ca_file, cert_file, key_file)`` builds a verifying client context (hostname and
chain checked, TLS 1.2+): ``ca_file`` is the PEM bundle that signs the center's and the broker's
server certificates (empty: the system's CAs), ``cert_file``/``key_file`` are this station's client
certificate for mutual TLS (the broker maps it to the station's ACL, ``use_identity_as_username``).
A missing or unreadable file is a ``TlsConfigError`` naming the config key, raised when the agent
starts — never a silent plain-text fallback.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import CenterConfig

__all__ = ["TlsConfigError", "center_tls", "client_context", "resolve"]


class TlsConfigError(ValueError):
    """A certificate setting that cannot be used (message names the key and the file)."""


def resolve(base: Path | None, value: str) -> str:
    """``value`` relative to the config directory ``base`` (absolute paths unchanged; "" stays "")."""
    if not value:
        return ""
    p = Path(value)
    return str(p if p.is_absolute() or base is None else base / p)


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    for key, value in (("center.ca_file", ca_file), ("center.cert_file", cert_file), ("center.key_file", key_file)):
        if value and not Path(value).is_file():
            raise TlsConfigError(f"{key}: {value} is not a readable file")
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(f"center.ca_file: {ca_file} is not a PEM CA bundle ({exc})") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file or None)
        except (ssl.SSLError, OSError) as exc:
            raise TlsConfigError(f"center.cert_file/key_file: {cert_file} with {key_file or 'no key'} "
                                 f"cannot be loaded ({exc})") from None
    return ctx


def center_tls(center: CenterConfig, base: Path | None) -> ssl.SSLContext | None:
    """The context ``[center]`` asks for (paths relative to the config dir ``base``), or None for plain."""
    if not (center.ca_file or center.cert_file or center.use_mqtt_tls or center.url.startswith("https://")):
        return None
    return client_context(resolve(base, center.ca_file), resolve(base, center.cert_file),
                          resolve(base, center.key_file))
