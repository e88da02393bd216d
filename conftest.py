"""Registers the opscheck plugin when the package is importable but not installed.

Installed (`pip install -e .`), the plugin comes through its `pytest11` entry point
under the same name, and this line is a no-op.
"""

pytest_plugins = ["opscheck.plugin"]
