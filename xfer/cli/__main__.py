"""``python -m xfer.cli ARGS``: the same as ``xfer ARGS``."""

from xfer.cli import main

if __name__ == "__main__":
    main()
