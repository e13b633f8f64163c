"""The bundle's contract, executed: its declared tests (``mloci test``), the environment it needs
(``mloci check``) and the results as signed evidence (``mloci test --attach``).

Modules that run models import numpy and load runners; import them only when a model runs.
"""
