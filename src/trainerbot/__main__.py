"""``python -m trainerbot`` is the ``trainerbot`` command."""

import sys

from trainerbot.cli import main

sys.exit(main())
