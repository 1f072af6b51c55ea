"""The ``tollgate`` command line: ``main`` (the console script's entry point) builds the
parser; ``governance`` and ``audit`` add their commands; ``support`` has what they share."""
