"""The job's functions: decoding and routing records, keyed dedup, embedding, and the pieces they share."""
