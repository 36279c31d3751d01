"""`python -m crisis` runs the command line."""

from crisis.cli import main

main()
