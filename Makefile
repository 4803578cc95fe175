# Each target creates .venv and installs the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-nas-compare clean clean-stale-numba

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP) clean-stale-numba
	$(VENV)/bin/aidi demo --out out/demo

# numba's cache is keyed on each function's own file only: drop caches older than any
# source file so a compiled caller never keeps a stale copy of an edited callee.
clean-stale-numba:
	@newest=$$(ls -t $$(find sim models -name '*.py') | head -1); \
	find sim models -path '*__pycache__*' \( -name '*.nbi' -o -name '*.nbc' \) ! -newer "$$newest" -delete 2>/dev/null || true

test: $(STAMP) clean-stale-numba
	$(PY) -m pytest -q -n 2 tests

bench: $(STAMP) clean-stale-numba
	$(VENV)/bin/aidi bench

# ours vs iNAS-style vs HW-NAS-style on Fashion-MNIST under two supplies that brown out
# (README "NAS: ours vs the baselines"; about 20 min each on a shared 2-core machine)
NAS_COMPARE := --compare --dataset fashion-mnist --quick --train-images 3000 --budget 24 --force
bench-nas-compare: $(STAMP) clean-stale-numba
	$(VENV)/bin/aidi nas lab-1mF-brownout $(NAS_COMPARE) --out out/nas/lab-1mF-brownout-compare
	$(VENV)/bin/aidi nas rf-intermittent $(NAS_COMPARE) --out out/nas/rf-intermittent-compare

clean:
	rm -rf $(VENV) out build
