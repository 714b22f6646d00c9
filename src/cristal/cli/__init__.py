"""The ``cristal`` command line (Typer + Rich)."""
