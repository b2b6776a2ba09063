import sys

from metaexp.cli import main

sys.exit(main())
