"""Importable application modules for the CLI tests (``waitress-serve MODULE:OBJECT``)."""
