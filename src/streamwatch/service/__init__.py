"""Service: the live runtime around the one pipeline - a bounded queue in, outputs fanned out.

    core.py        the queue, the consumer, subscribers (what runs)
    durability.py  the store and the sample journal (what survives a crash)
    actions.py     operator actions: ack, resolve, note (what people do)
    stats.py       what it counts (read by exporter.py)
"""
from streamwatch.service.actions import ACTIONS, ActionError
from streamwatch.service.core import Service, Subscriber
from streamwatch.service.stats import LATENCY_BUCKETS, Histogram, ServiceStats

__all__ = ["Service", "Subscriber", "ServiceStats", "Histogram", "LATENCY_BUCKETS",
           "ActionError", "ACTIONS"]
