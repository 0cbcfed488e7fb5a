.PHONY: run test lint migrate bench bench-worker

run:        ## the whole stack on embedded defaults, http://127.0.0.1:8000
	bin/dev

test:       ## lint, type-check and the whole suite (real Postgres + broker)
	bin/test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy .

migrate:    ## upgrade SALESOPS_DATABASE_URL to the latest schema
	.venv/bin/salesops migrate

bench:      ## intake benchmark; figures go to benchmarks/RESULTS.md by hand
	.venv/bin/python -m benchmarks.intake

bench-worker: ## forecast worker apply against a raw consume + COPY; figures in RESULTS.md
	.venv/bin/python -m benchmarks.worker --wait-quiet 60
