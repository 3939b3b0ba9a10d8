"""`python -m pynas.cli ...`: the same as the `pynas` command."""
import sys

from pynas.cli import main

sys.exit(main())
