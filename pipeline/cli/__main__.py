"""``python -m pipeline.cli``: the ``foveabench`` command."""

import sys

from pipeline.cli.main import main

sys.exit(main())
