"""Exporters: one small interface, each with its own bounded queue and worker thread."""
