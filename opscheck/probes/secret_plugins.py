"""detect-secrets plugins for the keys this service holds, which 1.5's own plugins miss.

detect-secrets loads this file by path (`file://...`); its OpenAIDetector knows only the
old `sk-...T3BlbkFJ...` shape, and nothing of its knows Anthropic's `sk-ant-api03-...`.
"""

import re

from detect_secrets.plugins.base import RegexBasedDetector


class AnthropicKeyDetector(RegexBasedDetector):
    """Anthropic API and admin keys: sk-ant-api03-..., sk-ant-admin01-..."""

    secret_type = "Anthropic API Key"
    denylist = (re.compile(r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{20,}"),)


class OpenAIProjectKeyDetector(RegexBasedDetector):
    """OpenAI project and service-account keys: sk-proj-..., sk-svcacct-..."""

    secret_type = "OpenAI Project Key"
    denylist = (re.compile(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"),)
