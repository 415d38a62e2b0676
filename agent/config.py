"""Station configuration: a TOML file, validated whole before anything starts.

``load_config(path)`` returns a frozen ``StationConfig`` or raises
``ConfigError`` naming the key (dotted path, list indexes included) and what
was expected.  The agent never starts on half a config: every check runs
before the first side effect.  ``forecourt config check FILE`` runs the same
code and exits 2 on an error.

Example (the full reference is docs/config.md)::

    [station]
    id = "S001"
    name = "示例加油站"

    [[grades]]
    code = "92"
    name = "92#汽油"
    price_fen = 789

    [[lines]]
    name = "bus1"
    protocol = "dart"
    url = "socket://127.0.0.1:7001"

    [[lines.pumps]]
    pump_id = 1
    address = 0x50
    nozzles = [{ number = 1, logical = 1, grade = "92" }]
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "ApiConfig",
    "CashierConf",
    "CatalogItemConf",
    "CenterConfig",
    "CheckoutConf",
    "ConfigError",
    "GradeConfig",
    "LineConf",
    "NozzleConf",
    "PolicyConfig",
    "PrinterConf",
    "PromotionConf",
    "PumpConf",
    "StationConfig",
    "TerminalConf",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` names each bad key and what was expected."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class StationSection(_Model):
    id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
    name: str = ""
    language: Literal["zh_CN", "en"] = "zh_CN"


class TerminalConf(_Model):
    """One checkout terminal allowed to use the local API over the station LAN.

    Only the SHA-256 of its token is configured (``printf %s TOKEN | sha256sum``),
    so the config file never holds a usable credential.  The terminal acts as
    ``terminal:<id>`` with the ``terminal`` role: it can log cashiers in and sell,
    but not do supervisor or manager work (prices, refunds without a PIN, shifts).
    """

    id: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")]
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    name: Annotated[str, Field(max_length=32)] = ""
    #: This terminal's own receipt printer (and cash drawer behind it); "" = the station's ``[printer]``.
    printer_url: str = ""


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ApiConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8640
    #: Bearer token for the local API; when empty, ``token_file`` is read (created 0600 if missing).
    token: str = ""
    token_file: str = "api-token"
    #: PEM server certificate and key (uvicorn ssl_certfile/ssl_keyfile); both or neither.
    #: Required when ``host`` is not a loopback address (multi-terminal stations).
    tls_cert: str = ""
    tls_key: str = ""
    #: Extra ``Host`` header names accepted by the DNS-rebinding guard (the agent's LAN name/address).
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-\[\]:]+$")]] = []
    #: Checkout terminals (``[[api.terminals]]``); from a non-loopback client only these may call the API.
    terminals: Annotated[list[TerminalConf], Field(max_length=32)] = []

    @model_validator(mode="after")
    def _lan(self) -> ApiConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both PEM paths or neither")
        if self.host not in _LOOPBACK and not self.tls_cert:
            raise ValueError(f"host {self.host!r} is not loopback: set tls_cert and tls_key "
                             "(terminals on the station LAN must talk TLS)")
        ids = [t.id for t in self.terminals]
        if len(set(ids)) != len(ids):
            raise ValueError("terminals: a terminal id is listed twice")
        hashes = [t.token_sha256 for t in self.terminals]
        if len(set(hashes)) != len(hashes):
            raise ValueError("terminals: two terminals share one token")
        return self


class DatabaseConfig(_Model):
    path: str = "forecourt.db"


class CenterConfig(_Model):
    url: str = "http://127.0.0.1:8650"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: Annotated[int, Field(ge=1, le=65535)] = 1883
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    #: PEM CA bundle signing the center's HTTPS and broker certificates ("" = the system's CAs).
    #: Relative paths are relative to the config file's directory (``forecourt setup`` uses certs/).
    ca_file: str = ""
    #: This station's client certificate and key (PEM) for mutual TLS with the center and broker.
    cert_file: str = ""
    key_file: str = ""
    #: MQTT over TLS; default: on for port 8883 (the MQTT-over-TLS port) or when a client certificate
    #: is set (the broker then knows the station by it). ``ca_file`` alone may be for HTTPS only.
    mqtt_tls: bool | None = None

    @model_validator(mode="after")
    def _tls(self) -> CenterConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("cert_file and key_file go together: set both PEM paths or neither")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r}: expected http://… or https://…")
        return self

    @property
    def use_mqtt_tls(self) -> bool:
        return self.mqtt_tls if self.mqtt_tls is not None else (self.mqtt_port == 8883 or bool(self.cert_file))


class GradeConfig(_Model):
    code: Annotated[str, Field(min_length=1, max_length=16)]
    name: str
    price_fen: Annotated[int, Field(ge=1, le=100_000)]


class NozzleConf(_Model):
    number: Annotated[int, Field(ge=1, le=999)]
    logical: Annotated[int, Field(ge=1, le=15)]
    grade: str


class DecimalsConf(_Model):
    volume: Annotated[int, Field(ge=0, le=3)] = 2
    amount: Annotated[int, Field(ge=0, le=2)] = 2
    price: Annotated[int, Field(ge=0, le=2)] = 2


class PumpConf(_Model):
    pump_id: Annotated[int, Field(ge=1, le=999)]
    address: Annotated[int, Field(ge=0)]
    nozzles: Annotated[list[NozzleConf], Field(min_length=1, max_length=15)]
    decimals: DecimalsConf = DecimalsConf()
    writes_enabled: bool = True
    tx_wrap_to: Literal[0, 1] = 1


class LineConf(_Model):
    name: Annotated[str, Field(min_length=1)]
    #: "dart" (Wayne DART, 8O1) or "gilbarco" (Gilbarco two-wire current loop, 8E1, 5787 baud).
    protocol: Literal["dart", "gilbarco"]
    url: Annotated[str, Field(min_length=1)]
    #: default 9600 for DART, 5787 for Gilbarco (which accepts only 5787 or 5760: never 9600, R10).
    baudrate: Literal[1200, 2400, 4800, 5760, 5787, 9600, 19200, 38400, 57600, 115200] = 9600
    response_timeout_s: Annotated[float, Field(gt=0, le=5)] = 0.1
    max_consecutive_timeouts: Annotated[int, Field(ge=1, le=100)] = 5
    pumps: Annotated[list[PumpConf], Field(min_length=1, max_length=32)]

    @model_validator(mode="before")
    @classmethod
    def _gilbarco_baud(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("protocol") == "gilbarco" and "baudrate" not in data:
            return {**data, "baudrate": 5787}
        return data

    @model_validator(mode="after")
    def _addresses(self) -> LineConf:
        if self.protocol == "gilbarco":
            if self.baudrate not in (5787, 5760):
                raise ValueError(f"baudrate: Gilbarco two-wire runs at 5787 (or 5760) baud, not {self.baudrate}")
            if len(self.pumps) > 16:
                raise ValueError("pumps: a Gilbarco loop has at most 16 pumps")
        seen: set[int] = set()
        for i, p in enumerate(self.pumps):
            if self.protocol == "dart" and not 0x50 <= p.address <= 0x6F:
                raise ValueError(f"pumps[{i}].address: DART address must be 0x50..0x6F, got {p.address:#x}")
            if self.protocol == "gilbarco" and not 1 <= p.address <= 16:
                raise ValueError(f"pumps[{i}].address: Gilbarco pump number must be 1..16, got {p.address}")
            if p.address in seen:
                raise ValueError(f"pumps[{i}].address: {p.address:#x} is used twice on this line")
            seen.add(p.address)
        return self


class PolicyConfig(_Model):
    #: R3: no authorization on nozzle lift unless the manager enabled it.
    auto_authorize: bool = False
    #: R6: completed-but-unpaid sales allowed per pump before a new authorization is refused.
    max_unpaid_per_pump: Annotated[int, Field(ge=0, le=5)] = 1
    #: An unpaid order is closed (and its locks released) after this many seconds.
    order_timeout_s: Annotated[int, Field(ge=30, le=86_400)] = 900
    #: An authorization nobody uses (nozzle never lifted) is cancelled after this many seconds, so a
    #: pump is not left open for whoever comes next (PTS-2 "auto close"); 0 = never.
    authorization_timeout_s: Annotated[int, Field(ge=0, le=3600)] = 300
    #: Release mobile orders (一键加油) to the pump without the cashier confirming.
    auto_release_mobile: bool = False
    #: Largest price step (fen/L) accepted in one change without a center instruction.
    max_price_step_fen: Annotated[int, Field(ge=1, le=10_000)] = 200


class CatalogItemConf(_Model):
    """A shop item sold at the counter (the center's catalog replaces these when it sends one)."""

    sku: Annotated[str, Field(min_length=1, max_length=32)]  #: barcode (EAN-13) or internal code
    name: Annotated[str, Field(min_length=1, max_length=64)]
    price_fen: Annotated[int, Field(ge=1, le=10_000_000)]
    plu: Annotated[str, Field(max_length=8)] = ""  #: short code typed by the cashier


class PromotionConf(_Model):
    """A cached promotion rule (the center's versioned rules replace these)."""

    id: Annotated[str, Field(min_length=1, max_length=32)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    #: level_price: members of ``level`` pay ``price_fen`` per litre of ``grade``;
    #: per_litre: ``off_fen_per_l`` off per litre of ``grade`` (optionally only for ``level``);
    #: spend_and_get: ``off_fen`` off an order of at least ``threshold_fen`` (满额减).
    kind: Literal["level_price", "per_litre", "spend_and_get"]
    grade: str = ""
    level: str = ""
    price_fen: Annotated[int, Field(ge=0, le=100_000)] = 0
    off_fen_per_l: Annotated[int, Field(ge=0, le=10_000)] = 0
    threshold_fen: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    off_fen: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class CashierConf(_Model):
    """A bootstrap account; the PIN is stored only as a salted hash in the database."""

    id: Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")]
    name: Annotated[str, Field(min_length=1, max_length=32)]
    role: Literal["cashier", "supervisor", "manager"] = "cashier"
    pin: Annotated[str, Field(min_length=4, max_length=12, pattern=r"^[0-9]+$")]


class CheckoutConf(_Model):
    #: A confirmed quote is honoured this long; payment after that needs a new quote.
    quote_ttl_s: Annotated[int, Field(ge=10, le=3600)] = 300
    #: Points are worth this many fen each when redeemed; one point earned per yuan paid.
    point_value_fen: Annotated[int, Field(ge=0, le=100)] = 1
    #: At most this share (percent) of the payable may be paid with points.
    max_points_percent: Annotated[int, Field(ge=0, le=100)] = 50
    #: Stored value may be spent offline up to the cached balance (refused when False).
    offline_stored_value: bool = True


class PrinterConf(_Model):
    #: "" = no printer (receipts still rendered); file:///path appends ESC/POS bytes; tcp://host:9100 network.
    url: str = ""
    #: CJK text encoding the printer's Chinese mode expects.
    encoding: Literal["gb18030", "gbk", "utf-8"] = "gb18030"
    width_chars: Annotated[int, Field(ge=24, le=64)] = 32


class StationConfig(_Model):
    station: StationSection
    api: ApiConfig = ApiConfig()
    database: DatabaseConfig = DatabaseConfig()
    center: CenterConfig = CenterConfig()
    policy: PolicyConfig = PolicyConfig()
    grades: Annotated[list[GradeConfig], Field(min_length=1)]
    lines: list[LineConf] = []
    catalog: list[CatalogItemConf] = []
    promotions: list[PromotionConf] = []
    cashiers: list[CashierConf] = []
    checkout: CheckoutConf = CheckoutConf()
    printer: PrinterConf = PrinterConf()

    @model_validator(mode="after")
    def _cross_checks(self) -> StationConfig:
        codes = [g.code for g in self.grades]
        dup = {c for c in codes if codes.count(c) > 1}
        if dup:
            raise ValueError(f"grades: grade code(s) {sorted(dup)} defined twice")
        pump_ids: set[int] = set()
        guns: set[int] = set()
        for li, line in enumerate(self.lines):
            for pi, pump in enumerate(line.pumps):
                where = f"lines[{li}].pumps[{pi}]"
                if pump.pump_id in pump_ids:
                    raise ValueError(f"{where}.pump_id: pump {pump.pump_id} is defined twice")
                pump_ids.add(pump.pump_id)
                logicals: set[int] = set()
                for ni, nz in enumerate(pump.nozzles):
                    if nz.grade not in codes:
                        raise ValueError(
                            f"{where}.nozzles[{ni}].grade: unknown grade {nz.grade!r}, expected one of {codes}"
                        )
                    if nz.number in guns:
                        raise ValueError(f"{where}.nozzles[{ni}].number: gun {nz.number} is used twice")
                    if nz.logical in logicals:
                        raise ValueError(f"{where}.nozzles[{ni}].logical: {nz.logical} repeats on this pump")
                    guns.add(nz.number)
                    logicals.add(nz.logical)
        for i, promo in enumerate(self.promotions):
            if promo.kind in ("level_price", "per_litre") and promo.grade not in codes:
                raise ValueError(f"promotions[{i}].grade: unknown grade {promo.grade!r}, expected one of {codes}")
        skus = [c.sku for c in self.catalog]
        if len(set(skus)) != len(skus):
            raise ValueError("catalog: an sku is listed twice")
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ValueError("lines: line names must be unique")
        return self

    # convenience lookups ------------------------------------------------
    def grade_price(self, code: str) -> int:
        return next(g.price_fen for g in self.grades if g.code == code)

    def pump(self, pump_id: int) -> PumpConf | None:
        return next((p for line in self.lines for p in line.pumps if p.pump_id == pump_id), None)

    def all_pumps(self) -> list[PumpConf]:
        return [p for line in self.lines for p in line.pumps]


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = part
        else:
            out += f".{part}"
    return out or "(top level)"


def _issues(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors(include_url=False):
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        key = _loc(tuple(e["loc"]))
        # Cross-field checks name their own key inside the message.
        problems.append(msg if key == "(top level)" else f"{key}: {msg}")
    return problems


def parse_config(data: dict[str, Any], source: str = "config") -> StationConfig:
    """Validate an already-parsed TOML document."""
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_issues(exc), source) from None


def load_config(path: str | Path) -> StationConfig:
    """Read and validate a TOML config file; raise ConfigError naming every problem."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror}"], str(p)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(["file is not UTF-8 text"], str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(p)) from None
    return parse_config(data, str(p))
