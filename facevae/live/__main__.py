"""`python -m facevae.live`: see `facevae.live.cli`.

Ctrl-C during the run finishes it: the view's video and the coordinates are written with the frames seen so far.
Before the first frame (torch and Lightning take seconds to import, a latent map to fit) it ends the command with
one line and status 130; nothing is left half-written, since every file goes to a temporary first.
"""

import sys

try:
    from facevae.live.cli import run  # inside the try: Ctrl-C during these imports ends in one line too

    run()
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
