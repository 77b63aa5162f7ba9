"""The provisioning env (spec §4) of ``disabled``: every credential and all proxy env
stripped, without an error, with or without a proxy configured.

Helpers: ``tests/core/provisioning_helpers.py``.
"""

from __future__ import annotations

import pytest
from tests.core.provisioning_helpers import (
    CREDENTIALS,
    NO_PROXY,
    PROXY,
    PROXY_NAMES,
    provision,
    secrets,
)

from llmbilling.core.provisioning import (
    ProxySettings,
)

# --- disabled --------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", [PROXY, NO_PROXY], ids=["proxy configured", "no proxy"])
def test_disabled_strips_every_credential_and_all_proxy_env_without_error(
    proxy: ProxySettings,
) -> None:
    tenant = secrets(*CREDENTIALS, *PROXY_NAMES)
    result = provision(override="disabled", workspace=tenant, proxy=proxy)
    assert not (CREDENTIALS | PROXY_NAMES) & set(result.env)
    assert set(result.stripped) == set(tenant)
