"""``python -m meterflow`` runs the ``meterflow`` command."""

from meterflow.cli import main

main()
