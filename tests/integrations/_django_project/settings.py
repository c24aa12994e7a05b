"""Settings of the test project: our middleware first, the logging recipe of the docs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[3] / "docs" / "integrations-django.md"


def logging_recipe() -> dict[str, Any]:
    """The ``LOGGING`` of docs/integrations-django.md, read from the page: the two cannot drift."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    [recipe] = [block for block in blocks if block.startswith("LOGGING = {")]
    namespace: dict[str, Any] = {}
    exec(recipe.split("\n# ---")[0], namespace)
    config: dict[str, Any] = namespace["LOGGING"]
    return config


SECRET_KEY = "only-for-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "tests.integrations._django_project.urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, Any] = {}
USE_TZ = True
MIDDLEWARE = ["async_hooks.integrations.django.RequestContextMiddleware"]
LOGGING = logging_recipe()

if os.environ.get("ASYNC_HOOKS_TEST_DJANGO_OPTIONS") == "custom":
    ASYNC_HOOKS_REQUEST_CONTEXT = {
        "header_name": "X-Correlation-ID",
        # A dotted path and a callable: settings may give either.
        "validator": "tests.integrations._django_project.ids.uuid_only",
        "transformer": str.lower,
        "generate_id": "tests.integrations._django_project.ids.numbered_id",
    }
