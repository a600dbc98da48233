# The two commands of the README: `make demo` (the main job) and `make test`.
# Both set up a virtual environment first; nothing else needs to be installed by hand.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU machines here carry torch 2.14.1 on disk; any torch >= 2.4 works.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test data system-packages venv lint docs clean

$(BIN)/xception: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS) || $(BIN)/pip install -q torch torchvision
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/xception

demo: venv
	$(BIN)/xception demo

# Fashion-MNIST for the tests that train on it, obtained as `make demo` does (Debian's package
# where apt-get is usable, else the official download into ~/.cache/xception/fashion-mnist). It
# never fails the build: where neither works, those tests skip and name what is missing.
data: venv
	@$(BIN)/xception data fetch || echo "make data: Fashion-MNIST unavailable; the tests that need it will skip"

# Debian's chromium (the browser test of `xception serve`: Playwright cannot download its own browsers
# here), nginx (the replicas test), SLURM's daemons and commands (the local one-node cluster of
# tests/test_cluster_slurm.py) and etcd (the etcd-v2 rendezvous of tests/test_cluster_nodes.py),
# installed where they are missing and apt-get is usable as root.
# It never fails the build: where they cannot be installed, those tests skip and name what is missing.
system-packages:
	@missing=""; test -x /usr/bin/chromium || missing="chromium"; test -x /usr/sbin/nginx || missing="$$missing nginx-light"; \
	test -x /usr/sbin/slurmctld || missing="$$missing slurmctld"; test -x /usr/sbin/slurmd || missing="$$missing slurmd"; \
	test -x /usr/bin/sbatch || missing="$$missing slurm-client"; test -x /usr/bin/etcd || missing="$$missing etcd-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	      || echo "make system-packages: could not install$$missing; the tests that need them will skip"; \
	  else echo "make system-packages: $$missing missing and apt-get unusable (not root); the tests that need them will skip"; fi; \
	fi

# `tests` named explicitly, so that the run can never collect nothing (pytest's exit status 5).
test: venv data system-packages
	$(BIN)/python -m pytest -n 2 -q tests

lint: venv
	$(BIN)/ruff check src tests benchmarks

# The documentation site from docs/ (mkdocs.yml) into site/; --strict: a broken link, a page missing
# from the nav or an API reference that cannot be resolved fails (tests/test_docs_site.py does the same).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs site
