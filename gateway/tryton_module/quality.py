"""``quality.inspection``: a quality hold plantwatch put on a production."""

from trytond.pool import PoolMeta

from .correlation import CorrelationMixin


class Inspection(CorrelationMixin, metaclass=PoolMeta):
    __name__ = "quality.inspection"
