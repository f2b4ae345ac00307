# The two commands of the README, and the stack's own verbs. Everything is in
# infra/local/stack.sh; this file only names it.
.PHONY: package demo demo-compatible demo-checked demo-realtime test test-fast chaos bench bench-engine bench-api bench-memory economics fuzz-api openapi up down status lint

demo:  ## set up, start the local stack, run the main job, stop what was started
	bash infra/local/stack.sh demo

test:  ## set up, start the local stack, run the whole test suite, 10 chaos rounds and a bounded fuzz of the API, stop what was started
	bash infra/local/stack.sh test

chaos: ## kill -9 the runner in the middle of 100 runs (CHAOS_ROUNDS=N for another count); every run must succeed
	bash infra/local/stack.sh chaos

demo-compatible:  ## the demo over the OpenAI-compatible adapter (a local server speaking its wire format)
	bash infra/local/stack.sh demo-compatible

demo-checked:  ## the demo on PROVIDER's official path (openai, anthropic, gemini) through a server checking each request
	bash infra/local/stack.sh demo-checked

demo-realtime:  ## the checked demo at a real model's pace (PACE_TPS=60, 2,000-token files), then each task's invocations and Lambda GB-seconds
	bash infra/local/stack.sh demo-realtime

bench: ## the gateway's overhead per call (routing, budget, slot, cache, ledger) on the local stack
	bash infra/local/stack.sh bench

bench-engine: ## the engine's CPU, commits and throughput per run with a release runner (BENCH_RUNS=30)
	bash infra/local/stack.sh bench-engine

economics: ## 20+ commands on the offline model with the real prompts: cost per task and run on real models, each plan's AI cost as a share of its price
	bash infra/local/stack.sh economics

bench-api: ## the API's requests per second, p99 and CPU per request next to pgbench on the route's SQL (needs wrk)
	bash infra/local/stack.sh bench-api

bench-memory: ## memory recall over 100,000 memories of one user among 1,000,000 rows: p50/p95 and recall@10 of HNSW against an exact scan (needs ~18 GB of disk)
	bash infra/local/stack.sh bench-memory

fuzz-api:  ## schemathesis against the API from its OpenAPI document, two users, 200 examples per operation (FUZZ_EXAMPLES=N)
	bash infra/local/stack.sh fuzz-api

test-fast:  ## the library tests alone (domain, contracts, route logic on in-memory twins): no stack
	cargo test --workspace --lib

openapi:  ## write openapi.json, docs/websocket.schema.json and docs/schema.graphql again from the code
	UPDATE_OPENAPI=1 cargo test -q -p autocrew-runner --lib the_committed_

up:    ## start the local stack and leave it running (.local/stack.env has its variables)
	bash infra/local/stack.sh up

down:
	bash infra/local/stack.sh down

status:
	bash infra/local/stack.sh status

lint:  ## cfn-lint and sam validate --lint on template.yaml
	bash infra/local/stack.sh lint

package:  ## sam build, fast: the workspace built once for arm64 (cargo lambda), then each function takes its binary; prints the time
	bash infra/local/stack.sh package

build-%:  ## sam build's step for one function (BuildMethod: makefile): its binary from the one workspace build
	bash infra/build/function.sh $* "$(ARTIFACTS_DIR)"
