"""The correlation id field shared by every model plantwatch writes to."""

from trytond.model import Unique, fields
from trytond.pyson import Eval

# plantwatch.gateway.erp.CORRELATION_ID_PATTERN: 1..20 of [A-Z0-9].
CORRELATION_ID_SIZE = 20
# Set when the document is created, never changed: trytond refuses an RPC write to a field whose
# ``readonly`` state is true (``check_modification``), while a create is checked with ``id`` -1.
SET_ON_CREATE = {"readonly": Eval("id", -1) >= 0}


class CorrelationMixin:
    """A ``plantwatch_correlation_id`` that is unique in its table (NULLs, for documents not made by
    plantwatch, are not compared)."""

    __slots__ = ()

    plantwatch_correlation_id = fields.Char(
        "Plantwatch Correlation ID",
        size=CORRELATION_ID_SIZE,
        states=SET_ON_CREATE,
        help="The id plantwatch gave the finding this document was made for; one document per id.",
    )

    @classmethod
    def __setup__(cls):
        super().__setup__()
        table = cls.__table__()
        cls._sql_constraints += [
            (
                "plantwatch_correlation_id_uniq",
                Unique(table, table.plantwatch_correlation_id),
                "plantwatch.msg_correlation_id_unique",
            ),
        ]
