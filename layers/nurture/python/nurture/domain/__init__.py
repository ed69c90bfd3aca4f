"""The pure core: programme, messages, scoring, schedule, journey, identity and content.

No I/O and no clock of its own: every function that needs the time takes `now`.
"""
