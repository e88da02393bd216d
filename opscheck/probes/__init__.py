"""Probes measure what *is* and return values with units; they never judge."""


class ProbeError(Exception):
    """A value could not be measured; the text says why, in one line."""
