"""Trade-center sync: outbox relay (HTTP), MQTT client, inbox, reconciliation, center simulator.

The only package that knows the center's wire formats.
"""
