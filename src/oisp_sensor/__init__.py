"""oisp-sensor: zero-instrumentation observability for AI traffic."""

__version__ = "0.1.0"
