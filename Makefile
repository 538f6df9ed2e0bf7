# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDR ?= 127.0.0.1:8000
# A stamp named after the requirements' checksum: editing them reinstalls, nothing else does. The command-line
# client (cli/, its own package and dependencies, never in the image) is installed beside them, editable.
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-deploy.txt cli/pyproject.toml | cksum | cut -d' ' -f1)
# The MySQL driver needs client headers to build; it is only installed when a MySQL URL is in use.
ifneq (,$(findstring mysql,$(DATABASE_URL)))
STAMP += $(VENV)/.installed-mysql-$(shell cksum < requirements-mysql.txt | cut -d' ' -f1)
endif

.PHONY: run test lint bench install clean image-check

$(VENV)/.installed-mysql-%: | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-mysql.txt
	rm -f $(VENV)/.installed-mysql-*
	touch $@

$(VENV)/.installed-%: | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet -e cli
	rm -f $(filter-out $(VENV)/.installed-mysql-%,$(wildcard $(VENV)/.installed-*))
	touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(STAMP)

## make run: the whole system in one process on the embedded defaults (or the services named by env vars).
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py run_dev --addr $(ADDR)

## make test: the whole test suite against real services.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m bench

## make image-check: build the image and run its four roles in podman (as root; see the README's containers section).
image-check: $(STAMP)
	docker/image-check

clean:
	rm -rf $(VENV) var staticfiles
