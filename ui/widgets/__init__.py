"""Reusable widgets of both screens (pump tiles, keypad, QR code)."""
