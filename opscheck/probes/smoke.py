"""The generation smoke test's requests, varied per run (the service caches answers by
exact request, so a repeated text would be answered from cache, not generated)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from opscheck.config import SmokeRequest


def varied(req: SmokeRequest) -> dict[str, Any]:
    """The request body, its text made unique to this run."""
    nonce = f"{datetime.now(UTC):%Y%m%d%H%M}-{secrets.token_hex(3)}"
    body: dict[str, Any] = {"user_request": f"{req.user_request} (점검 {nonce})"}
    if req.business_type:
        body["business_type"] = req.business_type
    if req.service_type:
        body["service_type"] = req.service_type
    if req.required_variables:
        body["required_variables"] = list(req.required_variables)
    return body
