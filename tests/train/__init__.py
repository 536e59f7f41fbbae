"""Tests of the Python training-side tools in models/train.

Run from the repository root: /usr/bin/python3 -m unittest discover -s tests/train -t .
Each test module imports ._paths first, which puts models/train on sys.path.
"""
