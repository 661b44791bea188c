"""Registers the built-in NUMA policies, in the order reports list them."""

from memsched.policies.numa import none  # noqa: F401
