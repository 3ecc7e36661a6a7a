"""``python -m seglab.compare`` = ``seglab-compare``."""

import sys

from seglab.compare.cli import main

sys.exit(main())
