"""The local stack: the processes a local run or a test needs on one machine (Kafka broker, Flink settings).

Nothing here is used by the job itself on a real cluster; it exists so that a fresh clone can run the whole
pipeline on loopback without Docker.
"""
