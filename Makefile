# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The MySQL driver needs client headers to build; only install it when a MySQL URL is in use.
ifneq (,$(findstring mysql,$(DATABASE_URL)))
REQUIREMENTS := requirements-dev.txt requirements-mysql.txt
else
REQUIREMENTS := requirements-dev.txt
endif
STAMP := $(VENV)/.installed-$(shell cat $(REQUIREMENTS) requirements.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint bench install clean

$(STAMP): $(REQUIREMENTS) requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(addprefix -r ,$(REQUIREMENTS))
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## make run: the whole system in one process on the embedded defaults (or the services named by env vars).
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py run_dev

## make test: the whole test suite against real services.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var staticfiles
