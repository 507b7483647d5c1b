"""streamwatch: real-time monitoring for live-commerce streams (直播带货).

The public surface is small: samples in (`Batch`, parsed by `streamwatch.ingest.parse`), alert
events out (`AlertEvent`), and the one `Pipeline` between them, configured by `load_config`.
"""
from streamwatch.config.load import Config, load_config
from streamwatch.events import AlertEvent
from streamwatch.ingest.batch import Batch
from streamwatch.pipeline import Pipeline

__version__ = "0.1.0"
__all__ = ["AlertEvent", "Batch", "Config", "Pipeline", "load_config", "__version__"]
