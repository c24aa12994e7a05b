"""What tool builders need beyond Node's API.

``lowlevel.accelerated()`` says whether the compiled hot path runs
(``from async_hooks import lowlevel``).
"""

from ._accelerator import accelerated

__all__ = ["accelerated"]
for _name in __all__:
    globals()[_name].__module__ = __name__
