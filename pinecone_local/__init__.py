"""A Pinecone-compatible local server for tests and local development.

Run it with ``python -m pinecone_local serve``; see ``pinecone_local/README.md``.
"""

__version__ = "0.1.0"
