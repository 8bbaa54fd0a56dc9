"""``python -m cdrrating`` runs the command line."""

import sys

from cdrrating.cli import main

sys.exit(main())
