"""``python -m waitress``: the ``waitress-serve`` command line.

Unlike waitress 3.0.2, which ignores ``run()``'s result and always exits 0, the process
exits with the CLI's exit code (SPEC D5, Q11).
"""

import sys

from waitress.runner import run

if __name__ == "__main__":
    sys.exit(run())
