"""The tools behind ``python -m async_hooks``: one job per module.

``_run`` runs a program as ``python`` would, with the other tools around it;
``_trace`` writes Chrome trace files, ``_why_running`` explains what keeps a
program alive, ``_stalls`` watches for steps that block the loop, ``_html``
draws a trace as one page and ``_live_view`` serves the task tree of a running
process. Their public names are re-exported by :mod:`async_hooks.diagnostics`.
"""
