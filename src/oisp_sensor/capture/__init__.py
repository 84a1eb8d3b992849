"""Kernel capture: the BPF loader, target discovery, ring-buffer polling and raw-capture files."""
