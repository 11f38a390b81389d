# The two commands a newcomer needs: `make run` (demo site on http://127.0.0.1:8050, or $PORT)
# and `make test` (the whole suite). Both create the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) app.py --demo

test: $(STAMP)
	$(PY) -m pytest -n $${PYTEST_WORKERS:-2} --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(PY) bench/poll_cycle.py

clean:
	rm -rf $(VENV) data .pytest_cache
