# pulmonode: `make demo` runs the end-to-end demo, `make test` the test suite (fresh Debian/Ubuntu).
VENV ?= .venv
PY := $(VENV)/bin/python
APT_PACKAGES := orthanc orthanc-dicomweb dcmtk dicom3tools poppler-utils chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: system-deps venv demo test bench weights clean

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# the CPU wheel first: any other torch range pulls a multi-GB CUDA build
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

demo: system-deps venv
	$(VENV)/bin/pulmonode demo

test: system-deps venv
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider

bench: venv
	$(PY) bench/ingest.py && $(PY) bench/inference.py && $(PY) bench/e2e.py

weights: venv
	$(VENV)/bin/pulmonode train demo-weights

clean:
	rm -rf $(VENV) data .pytest_cache
