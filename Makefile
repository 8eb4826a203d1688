# Two entry points: `make demo` and `make test` (and `make docs`). Each builds the virtual environment on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: a CPU build; letting pip resolve it pulls a multi-GB CUDA build.
TORCH ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml
	@# the shared cache tier's tests run against a real Redis server (skipped where there is none)
	command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q \
		&& apt-get install -y -q redis-server; } || echo "redis-server not installed: its tests skip"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[all]"
	touch $@

.PHONY: install demo test docs lint bench clean
install: $(VENV)/.installed

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/mmfeat demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# The documentation, gallery examples run, every warning an error (all of them listed).
docs: install
	HF_HUB_OFFLINE=1 $(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# pyflakes, import order, line length 100 (settings in pyproject.toml's [tool.ruff]).
lint: install
	$(BIN)/ruff check mmfeat tests benchmarks pipelines docs

# bench_real.py builds its data sets from Debian packages (speech, emoji glyphs and names,
# WordNet): installed here when missing (as root).
REAL_DATA_DEBS := espeak-ng fonts-noto-color-emoji unicode-data wordnet
bench: install
	command -v espeak-ng >/dev/null && test -f /usr/share/unicode/emoji/emoji-test.txt \
		&& test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf && test -d /usr/share/wordnet \
		|| { apt-get update -q && apt-get install -y -q $(REAL_DATA_DEBS); }
	for f in benchmarks/bench_*.py; do HF_HUB_OFFLINE=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) reports data/demo docs/_build docs/generated docs/auto_examples
