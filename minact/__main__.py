"""`python -m minact` runs the command line."""

from minact.cli import app

app()
