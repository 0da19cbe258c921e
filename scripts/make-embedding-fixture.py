#!/usr/bin/env python3
"""Reference vectors for the BERT embedder test, made once with sentence-transformers.

Usage: python3 scripts/make-embedding-fixture.py MODEL_DIR > crates/storage/tests/fixtures/minilm_reference.json

MODEL_DIR is the folder scripts/fetch-test-model.sh unpacks (all-MiniLM-L6-v2). Needs
`pip install sentence-transformers` (torch); the Rust tests only read the JSON it prints.
"""
import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "How do I restart the EC2 instance i-0abc123?",
    "The production database is running out of storage.",
    "pg-instance-main1 failed over to the standby replica at 03:12 UTC",
    "Show me last month's AWS bill broken down by service",
    "Lambda function timed out after 900 seconds",
    "S3 bucket policy denies public access",
    "a",
    "Quarterly cost review: rightsizing, savings plans and reserved instances",
    "¿Dónde están mis copias de seguridad? Überprüfe die Region eu-central-1.",
    "Kubernetes pods keep crashing with OOMKilled",
    " ".join(["The autoscaling group scaled out because CPU utilisation stayed above the threshold."] * 30),
    "IAM role arn:aws:iam::123456789012:role/ops-admin cannot assume the target role",
]


def main() -> None:
    model = SentenceTransformer(sys.argv[1], device="cpu")
    vectors = model.encode(SENTENCES, batch_size=4, normalize_embeddings=True)
    json.dump(
        {
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "max_seq_length": model.max_seq_length,
            "cases": [{"text": t, "vector": [round(float(x), 7) for x in v]} for t, v in zip(SENTENCES, vectors)],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
