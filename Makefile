# kafka-pinecone-flink: run `make help`.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup: ## install everything (Python environment, JVM jars); reuses what is already complete
	@bash scripts/setup.sh

demo: setup ## set up, then run the main job on the embedded default (local Kafka, local Pinecone, Flink mini-cluster)
	@$(PY) -m kafka_pinecone_flink.jobs.demo

check: setup ## the fast lane (a couple of minutes): lint, types and the unit tests; starts no JVM, broker or Flink
	@$(MAKE) --no-print-directory lint
	@$(PY) -m pytest -p no:cacheprovider -m unit -q $(PYTEST_ARGS)

test: setup ## run the whole test suite: the fast lane first (make check), the JVM side's JUnit tests, then every other test
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory test-jvm
	@$(PY) -m pytest -p no:cacheprovider -m "not unit" $(PYTEST_ARGS)

test-jvm: ## build jvm/src with Maven and run its JUnit tests (offline once ~/.m2 has the build's dependencies)
	@jvm/test.sh

test-unit: setup ## run the unit tests only
	@$(PY) -m pytest -p no:cacheprovider -m unit $(PYTEST_ARGS)

test-integration: setup ## run the integration tests only (real broker, local server, Flink)
	@$(PY) -m pytest -p no:cacheprovider -m integration $(PYTEST_ARGS)

lint: ## ruff and mypy
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy kafka_pinecone_flink chaos

hooks: ## have git run `make check` before every commit of this clone (scripts/pre-commit; skip once with --no-verify)
	@bash scripts/pre-commit --install

format: ## apply ruff's formatting and safe fixes
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

kafka-start: setup ## start the local Kafka broker (127.0.0.1:9092, data in .run/kafka)
	@$(PY) -m kafka_pinecone_flink.stack.kafka start

kafka-stop: ## stop the local Kafka broker
	@$(PY) -m kafka_pinecone_flink.stack.kafka stop

pinecone-start: setup ## start the local Pinecone-compatible server (127.0.0.1:5080, data in .run/pinecone)
	@mkdir -p .run && $(PY) -m kafka_pinecone_flink.pinecone_local start --port 5080 --data-dir .run/pinecone --pid-file .run/pinecone.pid --log-file .run/pinecone.log

pinecone-stop: ## stop the local Pinecone-compatible server
	@$(PY) -m kafka_pinecone_flink.pinecone_local stop --pid-file .run/pinecone.pid

bench-pinecone-local: setup ## benchmark the local Pinecone server (upsert throughput, query latency)
	@$(PY) benchmarks/pinecone_local_bench.py

bench-sink: setup ## the Pinecone writer alone against added server latency: request fullness, records/s, CPU
	@$(PY) benchmarks/sink_lanes_bench.py

bench-embed: setup ## benchmark the embedding model: one at a time vs batched, and the async embed stage
	@$(PY) benchmarks/embed_bench.py

bench-ingest: setup ## benchmark the ingest job (vectors and text to embed) next to raw model and upsert throughput
	@$(PY) benchmarks/ingest_bench.py

bench-pyflink: setup ## what PyFlink itself costs here: bare pipelines (source, decode, keyed, Python vs JVM state)
	@$(PY) benchmarks/pyflink_ceiling.py

bench: setup ## compare this job with a tutorial loop, a hand-made consumer and the raw limits (~17-25 min; BENCH_ARGS=--quick)
	@$(PY) benchmarks/compare.py $(BENCH_ARGS)

chaos-small: setup ## a short chaos run (mini-cluster): 5,000 events, throttling, 5xx, server/broker/job kills
	@$(PY) -m chaos.run --events 5000 --faults throttle,burst5xx,server-kill,broker-restart,job-kill

CHAOS_FAULTS := tm-kill*2,throttle,tm-kill*2,py-kill,tm-kill*2,burst5xx,tm-kill*2,savepoint,tm-kill*2,server-kill,tm-kill*2,py-kill,tm-kill*2,broker-restart,tm-kill*2,savepoint,tm-kill*2,py-kill,tm-kill*2
chaos: setup ## the full chaos suite on a standalone cluster (long: 100k events, 20 TaskManager kills, every fault); writes CHAOS_REPORT.md
	@$(PY) -m chaos.run --cluster --events 100000 --rate 400 --faults '$(CHAOS_FAULTS)' --report CHAOS_REPORT.md

lock: ## regenerate requirements.lock from the current environment
	@{ head -2 requirements.lock; $(PY) -m pip freeze --exclude-editable | grep -v '^kafka-pinecone-flink'; } > requirements.lock.new
	@mv requirements.lock.new requirements.lock

clean: ## stop local services and remove run data (keeps the cached environment)
	-@$(PY) -m kafka_pinecone_flink.stack.kafka stop 2>/dev/null
	-@$(PY) -m kafka_pinecone_flink.pinecone_local stop --pid-file .run/pinecone.pid 2>/dev/null
	rm -rf .run

.PHONY: help setup demo check hooks test test-jvm test-unit test-integration lint format kafka-start kafka-stop pinecone-start pinecone-stop bench-pinecone-local bench-sink bench-embed bench-ingest bench chaos-small chaos lock clean
