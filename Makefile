# The two commands of the README:
#   make demo  - build example_project's wheel with the hook, install it in a fresh venv
#                without llvmlite/hatchling/pluggy, run it, print the benchmark table
#   make test  - lint, type-check and run the whole test suite
PYTHON ?= python3
VENV := .venv
DEMO_VENV := .demo-venv
DIST := dist

.PHONY: demo test test-slow lint typecheck pytest bench clean aarch64-env

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DIST) $(DEMO_VENV)
	$(VENV)/bin/python -m pip wheel --quiet --no-deps -w $(DIST) .
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) ./example_project
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --no-index --find-links $(DIST) example-project
	$(DEMO_VENV)/bin/python -m pip install --quiet cffi
	@! $(DEMO_VENV)/bin/python -c "import llvmlite" 2>/dev/null || (echo "llvmlite must not be installed at run time" && false)
	@! $(DEMO_VENV)/bin/python -c "import hatchling" 2>/dev/null || (echo "hatchling must not be installed at run time" && false)
	@! $(DEMO_VENV)/bin/python -c "import pluggy" 2>/dev/null || (echo "pluggy must not be installed at run time" && false)
	@ls $(DIST)
	cd /tmp && $(CURDIR)/$(DEMO_VENV)/bin/python -m example_project
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_calls.py
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_abi.py
	$(DEMO_VENV)/bin/python benchmarks/bench_memory.py

bench:
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_calls.py
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_abi.py
	$(DEMO_VENV)/bin/python benchmarks/bench_memory.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check ffm_runtime hatch_ffm tests benchmarks example_project build_accel.py

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# ffm_runtime's accelerators: the editable install builds them (build_accel.py); rebuilt
# here when their sources change.
ACCEL := ffm_runtime/_objects/manifest.json
$(ACCEL): $(VENV)/.installed $(wildcard hatch_ffm/_ir/*.py) hatch_ffm/_lowering.py \
		hatch_ffm/_sysv.py hatch_ffm/_build.py hatch_ffm/_compile.py ffm_runtime/_abi.py
	$(VENV)/bin/python -m hatch_ffm._build ffm_runtime/_objects

pytest: $(VENV)/.installed $(ACCEL)
	$(VENV)/bin/python -m pytest

# qemu-user, a cross C compiler and an aarch64 CPython for tests/test_aarch64_emulated.py;
# needs root (apt-get).  Without it those tests skip, unless FFM_REQUIRE_AARCH64 is set.
aarch64-env:
	-bash tests/aarch64/setup.sh .aarch64

test: lint typecheck aarch64-env pytest

# The exhaustive runs: 1,000,000 fuzzed argument tuples, 100,000 mutated stub objects.
test-slow: $(VENV)/.installed $(ACCEL)
	$(VENV)/bin/python -m pytest -m slow

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(DIST) tests/_build benchmarks/_build .aarch64 ffm_runtime/_objects
