"""``python -m fmsearch``: the same as the ``fmsearch`` command."""

from fmsearch.cli import main

if __name__ == "__main__":
    main(prog_name="fmsearch")
