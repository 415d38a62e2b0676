"""PySide6 dual-screen client (cashier window, customer display): a client of the local API only."""
