"""An independent ESC/POS reader for tests: strips commands, decodes the text, notes QR codes and images.

It knows only the commands a receipt uses and fails on anything else, so a stray
byte in the printer stream is a test failure, not silently "text".
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Decoded:
    text: str = ""
    qr: list[str] = field(default_factory=list)
    images: int = 0
    drawer_kicks: int = 0
    cuts: int = 0
    chinese_mode: bool = False
    inits: int = 0

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


def decode(data: bytes, encoding: str = "gb18030") -> Decoded:
    """Walk the stream command by command; text bytes are decoded with ``encoding`` at the end."""
    out = Decoded()
    text = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:  # ESC
            c = data[i + 1]
            if c == 0x40:
                out.inits += 1
                i += 2
            elif c in b"!EaM-dGtV{":
                i += 3
            elif c == 0x70:  # ESC p m t1 t2: cash drawer
                out.drawer_kicks += 1
                i += 5
            else:
                raise AssertionError(f"unknown ESC command {c:#x} at {i}")
        elif b == 0x1D:  # GS
            c = data[i + 1]
            if c == 0x21:
                i += 3
            elif c == 0x56:  # GS V m [n]
                out.cuts += 1
                i += 3 if data[i + 2] in (0, 1, 48, 49) else 4
            elif c == 0x28 and data[i + 2] == 0x6B:  # GS ( k pL pH cn fn ...
                size = data[i + 3] + 256 * data[i + 4]
                body = data[i + 5:i + 5 + size]
                if body[:2] == b"1P":  # store the QR data (cn=49 fn=80 m=48)
                    out.qr.append(body[3:].decode("utf-8"))
                i += 5 + size
            elif c == 0x76 and data[i + 2] == 0x30:  # GS v 0 m xL xH yL yH d...: raster image
                x = data[i + 4] + 256 * data[i + 5]
                y = data[i + 6] + 256 * data[i + 7]
                out.images += 1
                i += 8 + x * y
            else:
                raise AssertionError(f"unknown GS command {c:#x} at {i}")
        elif b == 0x1C:  # FS
            c = data[i + 1]
            if c == 0x26:
                out.chinese_mode = True
                i += 2
            elif c == 0x2E:
                i += 2
            elif c == 0x21:
                i += 3
            else:
                raise AssertionError(f"unknown FS command {c:#x} at {i}")
        elif b == 0x0A or b >= 0x20:
            text.append(b)
            i += 1
        else:
            raise AssertionError(f"unexpected control byte {b:#x} at {i}")
    out.text = text.decode(encoding)
    return out
