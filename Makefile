# Every target first creates or reuses .venv (tools/install_env.sh is a no-op when up to date).
VENV ?= .venv
PY := $(VENV)/bin/python
export MMHRFORMER_VENV := $(abspath $(VENV))

.PHONY: env quickstart test bench complexity
env:
	@bash tools/install_env.sh

quickstart: env
	$(PY) tools/quickstart.py

test: env
	$(PY) -m pytest

bench: env
	$(PY) benchmarks/backbone_speed.py

complexity: env
	$(PY) benchmarks/complexity.py
