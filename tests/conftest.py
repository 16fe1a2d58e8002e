"""Root fixtures: a real Kafka broker and a standalone Flink cluster (tests/fixtures/stack.py) and the local
Pinecone-compatible server (tests/fixtures/pinecone_local.py), all started as real processes."""

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.pinecone_local"]
