"""The status page: the ledger and the running daemon at a glance, in a browser."""
