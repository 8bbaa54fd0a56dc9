"""The storage layer's internals, shared by every adapter (private): one home for what
is written, what a query means and how pages are cut. :mod:`cdrrating.repository` is
the public face."""
