"""``python -m eqprop``: the ``eqprop`` command line."""

import sys

from .cli import main

sys.exit(main())
