# The two commands of the README:
#   make demo  - build the wheels of example_project and the example bindings (example_bz2,
#                example_yaml, example_expat) with the hook, install them in a fresh venv without
#                llvmlite/hatchling/pluggy, run them, print the benchmark tables
#   make test  - lint, type-check and run the whole test suite
PYTHON ?= python3
VENV := .venv
DEMO_VENV := .demo-venv
DIST := dist

.PHONY: demo test test-slow test-every-python lint typecheck pytest bench clean aarch64-env \
	pythons-env example-libs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed example-libs
	rm -rf $(DIST) $(DEMO_VENV)
	$(VENV)/bin/python -m pip wheel --quiet --no-deps -w $(DIST) .
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) ./example_project
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) ./example_bz2
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) ./example_yaml
	$(VENV)/bin/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(DIST) ./example_expat
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install --quiet --no-index --find-links $(DIST) example-project \
		example-bz2 example-yaml example-expat
	$(DEMO_VENV)/bin/python -m pip install --quiet cffi pyyaml
	@! $(DEMO_VENV)/bin/python -c "import llvmlite" 2>/dev/null || (echo "llvmlite must not be installed at run time" && false)
	@! $(DEMO_VENV)/bin/python -c "import hatchling" 2>/dev/null || (echo "hatchling must not be installed at run time" && false)
	@! $(DEMO_VENV)/bin/python -c "import pluggy" 2>/dev/null || (echo "pluggy must not be installed at run time" && false)
	@ls $(DIST)
	cd /tmp && $(CURDIR)/$(DEMO_VENV)/bin/python -m example_project
	cd /tmp && $(CURDIR)/$(DEMO_VENV)/bin/python -m example_bz2
	cd /tmp && $(CURDIR)/$(DEMO_VENV)/bin/python -m example_yaml
	cd /tmp && $(CURDIR)/$(DEMO_VENV)/bin/python -m example_expat
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_calls.py
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_abi.py
	$(DEMO_VENV)/bin/python benchmarks/bench_memory.py
	$(DEMO_VENV)/bin/python benchmarks/bench_bulk.py
	$(DEMO_VENV)/bin/python benchmarks/bench_bz2.py
	$(DEMO_VENV)/bin/python benchmarks/bench_yaml.py
	$(DEMO_VENV)/bin/python benchmarks/bench_expat.py
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_pointers.py
	FFM_ENABLE_NATIVE_ACCESS=__main__ $(DEMO_VENV)/bin/python benchmarks/bench_upcalls.py
	$(VENV)/bin/python benchmarks/bench_build.py --quick --runtime-python $(DEMO_VENV)/bin/python

# Every benchmark once (after `make demo`), its tables written to docs/benchmarks.md and the
# README's headline block; also on every other supported CPython found.  The build benchmark
# runs in $(VENV) (the hook's dependencies) with its default sizes, 100 and 1,000 call shapes;
# `make bench BENCH_BUILD_ARGS="--sizes 100,1000,10000"` adds 10,000 (minutes per build).
BENCH_BUILD_ARGS ?=
bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/report.py --python $(DEMO_VENV)/bin/python --other-pythons \
		--build-args "$(BENCH_BUILD_ARGS)"

LINTED := ffm_runtime hatch_ffm tests benchmarks example_project example_bz2 example_yaml example_expat \
	build_accel.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy tests/scripts  # the scripts tests run in child processes
	$(VENV)/bin/mypy example_bz2/example_bz2 example_yaml/example_yaml \
		example_expat/example_expat  # the example bindings

# ffm_runtime's accelerators: the editable install builds them (build_accel.py); rebuilt
# here when their sources change.
ACCEL := ffm_runtime/_objects/manifest.json
$(ACCEL): $(VENV)/.installed $(wildcard hatch_ffm/_ir/*.py) hatch_ffm/_lowering.py \
		hatch_ffm/_sysv.py hatch_ffm/_build.py hatch_ffm/_compile.py ffm_runtime/_contract.py
	$(VENV)/bin/python -m hatch_ffm._build ffm_runtime/_objects

pytest: $(VENV)/.installed $(ACCEL)
	$(VENV)/bin/python -m pytest

# qemu-user, a cross C compiler and an aarch64 CPython for tests/test_aarch64_emulated.py;
# needs root (apt-get).  Without it those tests skip, unless FFM_REQUIRE_AARCH64 is set.
aarch64-env:
	-bash tests/aarch64/setup.sh .aarch64

# CPython 3.14 and 3.15 (tests/pythons/versions.txt) unpacked from Debian unstable's packages,
# for the wheel-level tests of tests/test_e2e.py.  Without them those tests skip, unless
# FFM_REQUIRE_PYTHONS is set.
pythons-env:
	-PYTHON=$(PYTHON) bash tests/pythons/setup.sh .pythons

# The C libraries of the example bindings (example_bz2, example_yaml, example_expat) and their
# -dev headers, installed with apt-get when missing (needs root then).  Without them those
# tests skip, unless FFM_REQUIRE_EXAMPLE_LIBS is set.
example-libs:
	-bash tests/examples/setup-libs.sh

test: lint typecheck aarch64-env pythons-env example-libs pytest

# The exhaustive runs: 1,000,000 fuzzed argument tuples, 100,000 mutated stub objects.
test-slow: $(VENV)/.installed $(ACCEL)
	$(VENV)/bin/python -m pytest -m slow

# The whole suite on every other supported CPython (tests/pythons/versions.txt), each in a
# venv of its own under .pythons/venvs; `make test` runs it on $(PYTHON) only.
test-every-python: $(VENV)/.installed pythons-env
	$(VENV)/bin/python tests/pythons/suite.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) $(DIST) tests/_build benchmarks/_build .aarch64 .pythons \
		ffm_runtime/_objects
