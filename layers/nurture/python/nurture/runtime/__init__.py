"""What a Lambda needs around the core: settings, lazily built AWS clients, wiring, observability and the clock."""
