"""``project.work``: a maintenance task made by plantwatch for a finding on an asset."""

from trytond.model import fields
from trytond.pool import PoolMeta

from .correlation import SET_ON_CREATE, CorrelationMixin

# plantwatch.gateway.erp.PRIORITIES, as SAP names them.
PRIORITIES = [
    (None, ""),
    ("1", "Very High"),
    ("2", "High"),
    ("3", "Medium"),
    ("4", "Low"),
]
# plantwatch.gateway.erp.OUTCOMES: the label plantwatch keeps for retraining.
OUTCOMES = [
    (None, ""),
    ("fault_confirmed", "Fault Confirmed"),
    ("no_fault_found", "No Fault Found"),
]


class Work(CorrelationMixin, metaclass=PoolMeta):
    __name__ = "project.work"

    plantwatch_asset = fields.Char(
        "Asset",
        states=SET_ON_CREATE,
        help="The equipment plantwatch found something on, as plantwatch names it.",
    )
    plantwatch_failure_mode = fields.Char(
        "Failure Mode", states=SET_ON_CREATE, help="What plantwatch found, e.g. outer_race."
    )
    plantwatch_priority = fields.Selection(
        PRIORITIES, "Priority", sort=False, help="1 is the highest; plantwatch only ever raises it."
    )
    plantwatch_outcome = fields.Selection(
        OUTCOMES,
        "Outcome",
        sort=False,
        help="What was found when the task was done; plantwatch reads it back to learn from it.",
    )
