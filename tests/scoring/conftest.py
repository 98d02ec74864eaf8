from __future__ import annotations

import pytest

from tests.scoring.llm_standin import StandIn


@pytest.fixture
def llm(settings):
    """The stand-in LLM endpoint, configured as the app's LLM."""
    standin = StandIn().start()
    settings.LLM_BASE_URL = standin.base_url
    settings.LLM_API_KEY = "test-key"
    settings.LLM_MODEL = "standin-1"
    settings.LLM_TIMEOUT_SECONDS = 3.0
    settings.LLM_MAX_RETRIES = 2
    yield standin
    standin.stop()
