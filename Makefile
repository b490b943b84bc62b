# The two commands of the README, and the pieces they are made of.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-tools/bin/uv)
DATA ?= omnicanal-data
PYTEST_ARGS ?=

.PHONY: demo test install lint typecheck imports pytest bench clean

$(UV):
	python3 -m venv .venv-tools && .venv-tools/bin/pip install --quiet uv

install: $(UV)
	$(UV) sync --frozen

demo: install
	.venv/bin/omnicanal demo --data $(DATA)

test: install lint typecheck imports pytest

lint:
	.venv/bin/ruff check src tests bench

typecheck:
	.venv/bin/mypy

imports:
	.venv/bin/lint-imports

pytest:
	.venv/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf .venv .venv-tools .mypy_cache .pytest_cache .ruff_cache .import_linter_cache
