"""Metrics (see ARCHITECTURE.md "Metric contract"). Importing registers them."""
from .wsss_metric import WSSSMetric

__all__ = ['WSSSMetric']
