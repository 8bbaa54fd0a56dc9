"""Tools for testing code that uses cdrrating.

:mod:`cdrrating.testing.strategies` holds Hypothesis strategies for the public types
(it needs the ``test`` extra: ``pip install 'cdrrating[test]'``). Importing this package
imports nothing beyond cdrrating itself; each submodule imports what it needs.
"""
