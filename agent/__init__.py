"""Forecourt agent: the domain core, the store and the local API service.

The core (``agent.model``, ``agent.money``, ``agent.config``, ``agent.store``) is
pure Python: no Qt, no MQTT, no HTTP client, no serial port.  Time and ids are
passed in so tests are deterministic.
"""
