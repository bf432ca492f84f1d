"""``python -m hpsearch`` runs the CLI (used to spawn local workers)."""

from hpsearch.cli import main

main()
