"""A faithful trade-center simulator for demo and tests (HTTP API of seed 002 + uploads + MQTT)."""
