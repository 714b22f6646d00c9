"""``python -m cristal`` runs the command line."""

from cristal.cli.app import main

main()
