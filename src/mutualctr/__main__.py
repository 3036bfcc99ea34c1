import os
import sys

from mutualctr.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # Under torchrun the run is complete here (its files written, the process group left);
    # exiting without the interpreter's teardown avoids gloo's transport threads aborting the
    # process during C++ static destruction ("terminate called without an active exception"),
    # which turned finished runs into failures under load.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
