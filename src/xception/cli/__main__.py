"""`python -m xception.cli` (and `torchrun -m xception.cli`): the `xception` command."""

import sys

from xception.cli import main

sys.exit(main())
