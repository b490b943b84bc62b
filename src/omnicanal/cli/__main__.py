"""Run the command line as `python -m omnicanal.cli`."""

from omnicanal.cli.main import app

app()
