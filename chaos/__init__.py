"""The chaos harness: a seeded change-stream workload with its exact expected end state (``chaos.workload``), the
verdict that compares an index and a dead-letter topic with it (``chaos.verify``), and a runner that plays the
workload through the ingest job while it injects faults (``python -m chaos.run``)."""
