"""``python -m pinecone_local``."""

import sys

from .cli import main

sys.exit(main())
