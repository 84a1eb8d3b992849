"""CI/CD helpers: `oisp-sensor validate` and `oisp-sensor report` over a recorded JSONL file.

They run without root and without the kernel: plain functions over the events file the
sensor wrote, so a pipeline can record in one step and check in another.
"""
