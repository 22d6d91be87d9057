"""``python -m omnifuse`` runs the CLI."""

from omnifuse.cli import main

main()
