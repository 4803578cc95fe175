# Each target creates .venv and installs the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-nas bench-nas-compare clean clean-stale-numba

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

# the comparison protocol (README "The protocol: three views"): equal search time, architecture quality
# (every pick retrained, 3 seeds) and ground truth (30 members trained, regret), Fashion-MNIST, two
# supplies that brown out, 2 workers. Settings meant for about 1 h on a 2-core machine (estimated from
# per-epoch times, not run whole); the second scenario reuses nothing: give more workers to go faster.
# Override any of them: make bench-nas NAS_IMAGES=60000 NAS_FINAL_EPOCHS=10 NAS_WORKERS=8
NAS_IMAGES ?= 6000
NAS_FINAL_IMAGES ?= 12000
NAS_FINAL_EPOCHS ?= 3
NAS_TRUTH ?= 30
NAS_WORKERS ?= 2
NAS_BUDGET ?= 16
NAS_SEEDS ?= 0,1,2
NAS_BENCH_OUT ?= out/bench-nas
NAS_PROTOCOL = --compare --dataset fashion-mnist --quick --train-images $(NAS_IMAGES) --budget $(NAS_BUDGET) \
	--final-train-images $(NAS_FINAL_IMAGES) --final-epochs $(NAS_FINAL_EPOCHS) --final-seeds $(NAS_SEEDS) \
	--truth-members $(NAS_TRUTH) --views equal-time,quality,truth --workers $(NAS_WORKERS) --force
bench-nas: $(STAMP) clean-stale-numba
	$(VENV)/bin/aidi nas lab-1mF-brownout $(NAS_PROTOCOL) --out $(NAS_BENCH_OUT)/lab-1mF-brownout
	$(VENV)/bin/aidi nas rf-intermittent $(NAS_PROTOCOL) --out $(NAS_BENCH_OUT)/rf-intermittent

clean:
	rm -rf $(VENV) out build
