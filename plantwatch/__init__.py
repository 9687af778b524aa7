"""plantwatch: predictive maintenance and quality on the shop floor.

The shared package holds what agent and gateway both speak: the wire contract (:mod:`plantwatch.contract`),
configuration loading (:mod:`plantwatch.config`), logging (:mod:`plantwatch.log`), the clock
(:mod:`plantwatch.clock`), the SQLite opener (:mod:`plantwatch.db`) and the MQTT client wrapper
(:mod:`plantwatch.mqtt`).
"""

__version__ = "0.1.0"
