"""Behavioural B2B lead-nurture engine: the package shared by every Lambda, the CLI and the local stack."""

__version__ = "0.1.0"
