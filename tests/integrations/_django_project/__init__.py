"""A small Django project served by real servers in ``test_django.py``.

``ASYNC_HOOKS_TEST_DJANGO_OPTIONS=custom`` in the environment gives the
middleware a custom header, validator and transformer.
"""
