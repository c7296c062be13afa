"""`python -m sgdn_ros ...` is `sgdn-ros ...` (for machines where only the sources are present)."""

import sys

from sgdn_ros.tools.cli import main

sys.exit(main())
