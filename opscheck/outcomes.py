"""The suite's exit codes and check outcomes, in one place (the contract in docs/contracts.md).

The exit codes are pytest's own, so cron, CI and wrappers read them as for any pytest run.
"""

from __future__ import annotations

from enum import IntEnum

import pytest


class ExitCode(IntEnum):
    OK = int(pytest.ExitCode.OK)  # every selected check passed (or was skipped or waived)
    CHECK_FAILED = int(pytest.ExitCode.TESTS_FAILED)  # at least one check failed or errored
    INTERRUPTED = int(pytest.ExitCode.INTERRUPTED)  # stopped by the user, or a collection error
    INTERNAL_ERROR = int(pytest.ExitCode.INTERNAL_ERROR)  # a bug in the suite or a plugin
    USAGE_ERROR = int(pytest.ExitCode.USAGE_ERROR)  # bad command line or bad config: nothing ran
    NO_CHECKS = int(pytest.ExitCode.NO_TESTS_COLLECTED)  # the marker expression selected nothing


OUTCOMES = ("passed", "failed", "error", "skipped", "waived", "not run")  # not run: interrupted
CADENCES = ("daily", "weekly", "monthly", "quarterly")
SEVERITIES = ("critical", "warning")
