"""kafka-pinecone-flink's one import name: ``kafka_pinecone_flink.jobs``, ``.udfs``, ``.sinks``, ``.stack`` and
``.pinecone_local``.

The packages are the repository's top-level folders (``jobs/``, ``udfs/``, ...). In a clone this folder holds a
relative symbolic link to each, so that with the clone's root on ``sys.path`` (``.venv/bin/kpf``, pytest, the job's
Python workers) they import under this one name; ``pip install .`` installs them under it (``pyproject.toml`` maps
each package to its folder), so that no package with a generic name lands in site-packages. The job archive shipped
to a cluster (``stack.cluster.build_job_archive``) has the same shape.
"""
