"""Trade-center sync: outbox relay over HTTP, MQTT client, inbox, reconciliation; the only code that knows the center's wire formats."""
