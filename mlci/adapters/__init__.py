"""Thin wrappers around external clients; the only code that touches them. Each maps the client's errors
to mlci's."""
