"""``python -m harness ...``: the same as the ``dibs-bench`` console script (:mod:`harness.cli`)."""

from harness.cli import main

if __name__ == "__main__":
    main()
