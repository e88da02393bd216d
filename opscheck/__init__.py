"""opscheck: the AlimTalk template service's maintenance guide as pytest checks."""

__version__ = "0.1.0"
