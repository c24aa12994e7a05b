"""The ASGI entry point, as ``startproject`` writes it, plus ``install()``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]  # no types

from async_hooks.propagation import install

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations._django_project.settings")
install()  # thread pools and executors started by views see the request's stores
application = get_asgi_application()
