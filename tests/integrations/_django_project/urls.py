"""The test project's routes: one sync and one async view of each kind."""

from __future__ import annotations

from django.urls import path  # type: ignore[import-untyped]  # Django ships no types

from . import views

urlpatterns = [
    path("sync", views.sync_view),
    path("async", views.async_view),
    path("sync/boom", views.sync_boom),
    path("async/boom", views.async_boom),
    path("sync/stream", views.sync_stream),
    path("async/stream", views.async_stream),
    path("bad", views.bad_request),
]
