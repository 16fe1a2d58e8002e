"""Bytes per record of the upsert requests the sink sends for the text workload (b), with the model's vectors.

    python benchmarks/request_bytes.py [--records 250]

Embeds the first records of (b) (``compare_lib.text_records``) with the default model and prints the size of each
record's JSON in an upsert request, its vector written as doubles (``upsert_json``, as before) and in float32's
shortest form (``upsert_json(..., narrow=True)``, what the sink writes for a model's vector), and how many such
records a request of ``sink.max-request-bytes`` (the default) holds. It checks that both forms read back as the same
float32 numbers, which is what Pinecone keeps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from benchmarks.compare_lib import text_records  # noqa: E402
from kafka_pinecone_flink.sinks.config import DEFAULT_MAX_REQUEST_BYTES  # noqa: E402
from kafka_pinecone_flink.udfs.embed_model import load_encoder  # noqa: E402
from kafka_pinecone_flink.udfs.records import upsert_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250)
    args = parser.parse_args()
    records = text_records(args.records)
    encoder = load_encoder("default", device="cpu", batch_size=64)
    vectors = encoder.encode([f"{row['title']}\n{row['description']}" for _, row in records])
    doubles = narrow = 0
    for (key, row), vector in zip(records, vectors, strict=True):
        values = np.asarray(vector, dtype=np.float32).tolist()
        metadata = orjson.dumps(row)
        wide_json = upsert_json(key, values, None, metadata)
        narrow_json = upsert_json(key, values, None, metadata, narrow=True)
        for text in (wide_json, narrow_json):
            if not np.array_equal(np.asarray(orjson.loads(text)["values"], dtype=np.float32), np.float32(vector)):
                raise SystemExit(f"record {key}: the JSON does not read back as the model's float32 vector")
        doubles += len(wide_json) + 1  # the comma between records
        narrow += len(narrow_json) + 1
    n = len(records)
    print(f"(b), {n} records with the default model's vectors and their metadata:")
    for label, total in (("vector as doubles", doubles), ("vector in float32's shortest form", narrow)):
        per_request = int(DEFAULT_MAX_REQUEST_BYTES // (total / n))
        print(
            f"  {label}: {total / n:,.0f} bytes per record, "
            f"{per_request:,} records per request of {DEFAULT_MAX_REQUEST_BYTES:,} bytes"
        )
    print(f"  {1 - narrow / doubles:.0%} fewer bytes; both read back as the same float32 numbers")


if __name__ == "__main__":
    main()
