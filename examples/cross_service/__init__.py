"""One request followed through two web services and a Celery worker.

Run ``python examples/cross_service/run.py``; docs/integrations-clients.md explains it.
"""
