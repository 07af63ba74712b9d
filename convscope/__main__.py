"""``python -m convscope``: the same as the ``convscope`` command."""

import sys

from convscope.cli import main

sys.exit(main())
