"""``python -m flordb <command>``: the same as the ``flor`` command."""

import sys

from .cli import main

sys.exit(main(["flor", *sys.argv[1:]]))
