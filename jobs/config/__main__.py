"""``python -m jobs.config --markdown`` prints the README's options table; ``python -m jobs.config [options]`` checks
a configuration and prints it, secrets masked."""

import sys

from kafka_pinecone_flink.jobs.config.build import main

sys.exit(main())
