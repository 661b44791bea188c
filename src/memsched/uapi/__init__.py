"""Kernel ABI types, mirrored from ``include/uapi/linux``: constants and layouts, no behaviour."""
