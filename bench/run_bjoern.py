"""bjoern has no command line: `python run_bjoern.py HOST PORT MODULE:APP`."""

import importlib
import sys

import bjoern


def main() -> None:
    host, port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name)
    bjoern.run(app, host, port)


if __name__ == "__main__":
    main()
