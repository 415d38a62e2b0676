"""Process supervision for the demo and tests (outside the layered packages, like main.py)."""
