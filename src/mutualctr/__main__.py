import sys

from mutualctr.cli import main

sys.exit(main())
