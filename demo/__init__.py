"""`make demo`: the whole method end to end on the generated demo dataset (python -m demo)."""
