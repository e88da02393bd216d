"""Probes measure what *is* and return values with units; they never judge."""
