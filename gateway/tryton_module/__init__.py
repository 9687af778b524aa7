"""plantwatch's Tryton module: the fields plantwatch's documents carry in Tryton 8.2.

Activated as the Tryton module ``plantwatch`` (entry point ``trytond.modules``, see pyproject.toml):
``trytond-admin -c trytond.conf -d DB -u plantwatch --activate-dependencies``.

- ``project.work`` (a maintenance task) gets ``plantwatch_correlation_id``, ``plantwatch_asset``,
  ``plantwatch_failure_mode``, ``plantwatch_priority`` (``"1"`` very high … ``"4"`` low) and
  ``plantwatch_outcome`` (what the planner found when closing the task), on a "Plantwatch" page of the
  form.
- ``quality.inspection`` (a quality hold) gets ``plantwatch_correlation_id``.

The correlation id is unique by an SQL constraint on both tables, so Tryton itself refuses a second
document for one finding, whoever creates it (message ``plantwatch.msg_correlation_id_unique``).

Classes are registered by :func:`register`, not by a ``[register]`` section of tryton.cfg: trytond 8.2
resolves the names of that section under ``trytond.modules.<name>`` only, which a module installed by entry
point from another package is not. trytond issues a DeprecationWarning for ``register()`` (hidden by
Python's default warning filters), nothing more.
"""

from trytond.pool import Pool

from . import quality, work

__all__ = ["register"]


def register() -> None:
    """Register the module's classes in Tryton's pool (called by trytond when it loads the module)."""
    Pool.register(work.Work, quality.Inspection, module="plantwatch", type_="model")
