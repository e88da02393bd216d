"""A reference deployment of the AlimTalk template service, for the demo and the suite's tests.

`python -m opscheck.sandbox up|down|status`; see `control.py` for the Python API.
"""
