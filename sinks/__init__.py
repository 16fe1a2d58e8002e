"""Outputs of the job: the checkpoint-aware Pinecone sink and the dead-letter output."""
