"""Root fixtures: a real Kafka broker (stack.pytest_plugin) and the local Pinecone-compatible server
(pinecone_local.pytest_plugin), both started as real processes."""

pytest_plugins = ["stack.pytest_plugin", "pinecone_local.pytest_plugin"]
