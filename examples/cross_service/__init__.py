"""One request followed through two web services and a Celery worker.

See README.md in this directory, or run ``python examples/cross_service/run.py``.
"""
