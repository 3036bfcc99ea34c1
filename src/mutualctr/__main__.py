import os
import sys

from mutualctr.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    from mutualctr.distributed.ddp import exit_without_teardown

    exit_without_teardown(code)  # the run is complete; see its docstring
sys.exit(code)
