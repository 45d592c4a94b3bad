# The two commands a newcomer needs are `make deploy` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# Molecule calls ansible-config and friends: the tool environment comes first on PATH.
export PATH := $(BIN):$(PATH)
# Extra arguments for ansible-playbook, e.g. ANSIBLE_ARGS="--ask-vault-pass --check --diff".
ANSIBLE_ARGS ?=
# Extra arguments for the benchmark, e.g. BENCH_ARGS="--seconds 30 --concurrency 32".
BENCH_ARGS ?=

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
AS_POSTGRES := $(if $(filter 0,$(shell id -u)),runuser -u postgres --,sudo -u postgres)
# Debian packages the controller needs: to build the tool environment, and for the
# tests, to build and boot the systemd-nspawn test hosts.
DEPLOY_PACKAGES := python3-venv sudo
TEST_PACKAGES := $(DEPLOY_PACKAGES) debootstrap systemd-container postgresql
# The module tests: a PostgreSQL 15 on this machine and the LiteLLM releases they migrate.
TEST_CACHE := $(HOME)/.cache/litellm-gateway
TEST_WHEELS := litellm==1.80.16 litellm-proxy-extras==0.4.21 litellm-proxy-extras==0.4.110
# LiteLLM releases whose own encryption helpers check the model-table module: the pinned one,
# and the newest that installs from the package index here and writes v2:gcm:.
TEST_ORACLES := 1.80.16 1.103.7
PG_TEST_USER := litellm_schema_test
PG_TEST_PASSWORD_FILE := $(TEST_CACHE)/pg-test-password

.PHONY: help deploy test lint unit module-test molecule bench bench-schema bench-model-table bench-models bench-rerun demo demo-shell demo-destroy venv preflight root-or-sudo deploy-packages test-packages test-postgres test-wheels test-oracles clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deploy: deploy-packages venv ## Deploy the stack to the default inventory (this machine)
	ansible-playbook site.yml $(ANSIBLE_ARGS)

test: test-packages venv lint unit module-test molecule ## Lint, unit tests, module tests, then the Molecule scenario

lint: venv ## yamllint, ansible-lint (production profile), ruff, mypy, systemd-analyze security of every rendered unit
	yamllint --strict .
	ansible-lint
	ruff check .
	ruff format --check .
	mkdir -p .mypy_cache/view/ansible && ln -sfn ../../../module_utils .mypy_cache/view/ansible/module_utils && mypy
	python3 tests/lint/systemd_units.py --threshold 3.0

unit: venv ## Unit tests (pytest): the playbooks' contracts, then the litellm_ops package
	pytest tests/unit
	pytest tests/ops

module-test: test-packages venv test-postgres test-wheels test-oracles ## Module tests against a real PostgreSQL 15
	LITELLM_TEST_REQUIRE=1 LITELLM_TEST_PG_USER=$(PG_TEST_USER) LITELLM_TEST_PG_PASSWORD_FILE=$(PG_TEST_PASSWORD_FILE) \
	LITELLM_TEST_WHEELS=$(TEST_CACHE)/wheels LITELLM_TEST_ORACLES=$(TEST_CACHE) pytest tests/modules

# The default and remediation scenarios work on one Debian 13 host: --shared-state lets the default
# scenario create and destroy it, and one ephemeral directory (its inventory, secrets and reports) is
# named for both, because molecule 26 computes each scenario's own directory before it reads --shared-state.
MOLECULE_SHARED_DIR := $(HOME)/.ansible/tmp/molecule.litellm-gateway.shared
# The newcomer scenario (a Debian 12 host running the README's make deploy) runs first, alone: the
# containers share this machine's ports. It leaves a backup of its PostgreSQL 15 in MOLECULE_MOVING_DIR,
# which the remediation scenario restores onto the Debian 13 host's PostgreSQL 17.
MOLECULE_NEWCOMER_DIR := $(HOME)/.ansible/tmp/molecule.litellm-gateway.newcomer
MOLECULE_MOVING_DIR := $(TEST_CACHE)/moving

# Molecule's recap comes last; on a failure the verifier's own lines are repeated after it, so the
# end of the output names the failed tests (the whole output stays in MOLECULE_LOG).
MOLECULE_LOG := $(TEST_CACHE)/molecule-test.log

molecule: test-packages venv ## molecule test: the newcomer's make deploy on Debian 12, then default and remediation on one Debian 13 host
	@mkdir -p $(TEST_CACHE)
	set -o pipefail; export COLUMNS=160 LITELLM_TEST_MOVING_DIR=$(MOLECULE_MOVING_DIR) LITELLM_TEST_MOVING_REQUIRE=1; \
	  { MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_SHARED_DIR) molecule destroy -s default \
	    && MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_NEWCOMER_DIR) molecule test -s newcomer \
	    && MOLECULE_EPHEMERAL_DIRECTORY=$(MOLECULE_SHARED_DIR) molecule test -s default -s remediation --shared-state; } 2>&1 \
	  | tee $(MOLECULE_LOG) || { echo "== the verifier's errors and failed tests (whole output: $(MOLECULE_LOG))"; \
	  sed -E 's/\x1b\[[0-9;]*m//g; s/^ *│ ?//' $(MOLECULE_LOG) > $(MOLECULE_LOG).plain; \
	  grep -E '^E  ' $(MOLECULE_LOG).plain | head -n 30; grep -E -A1 '^(FAILED|ERROR) ' $(MOLECULE_LOG).plain; exit 1; }

bench: demo ## Chat completions through the deployed proxy vs. LiteLLM's documented start (rps, p50, p99)
	python3 bench/proxy_bench.py $(BENCH_ARGS)

bench-schema: test-packages venv test-postgres test-wheels ## Fresh migration vs. psql -f; drifted vs. clean remediation; the matrix, timed
	LITELLM_TEST_PG_USER=$(PG_TEST_USER) LITELLM_TEST_PG_PASSWORD_FILE=$(PG_TEST_PASSWORD_FILE) \
	LITELLM_TEST_WHEELS=$(TEST_CACHE)/wheels python3 bench/schema_bench.py $(BENCH_ARGS)
	LITELLM_TEST_REQUIRE=1 LITELLM_TEST_PG_USER=$(PG_TEST_USER) LITELLM_TEST_PG_PASSWORD_FILE=$(PG_TEST_PASSWORD_FILE) \
	LITELLM_TEST_WHEELS=$(TEST_CACHE)/wheels pytest -q -s --durations=1 tests/modules/test_schema_matrix.py

bench-model-table: test-packages venv test-postgres test-wheels test-oracles ## Audit and normalize 10,000 model rows: module vs. LiteLLM's helpers
	LITELLM_TEST_PG_USER=$(PG_TEST_USER) LITELLM_TEST_PG_PASSWORD_FILE=$(PG_TEST_PASSWORD_FILE) \
	LITELLM_TEST_WHEELS=$(TEST_CACHE)/wheels $(TEST_CACHE)/oracle-1.80.16/bin/python bench/model_table_bench.py $(BENCH_ARGS)

bench-models: demo ## Local model layer: memory at rest, cold vs. warm first token (socket activation), gate decision time
	python3 bench/models_bench.py $(BENCH_ARGS)

bench-rerun: demo ## No-op re-run of site.yml, remediate.yml on a healthy host, --tags hardening vs. a ping (s, ratio)
	python3 bench/rerun_bench.py $(BENCH_ARGS)

demo: test-packages venv ## Converge the stack in a throwaway container and keep it
	molecule converge

demo-shell: ## Open a shell in the demo container
	@pidfile=$$(ls -t $${HOME}/.ansible/tmp/molecule.*.default/litellm-gw.pid 2>/dev/null | head -n 1); \
	test -n "$$pidfile" || { echo "No demo container: run make demo first." >&2; exit 1; }; \
	nsenter -t "$$(cat "$$pidfile")" -a bash -l

demo-destroy: venv ## Remove the demo container
	molecule destroy

venv: $(VENV)/.installed ## Create the pinned Python tool environment

# The operations tool's dependencies come from its lock, the hashes left out (they are the hosts' wheels,
# and this Python may be another), so the tests run the releases the hosts run.
OPS_TOOL := tools/litellm-ops

$(VENV)/.installed: requirements.txt $(OPS_TOOL)/pyproject.toml $(OPS_TOOL)/requirements.lock
	$(PYTHON) -m venv $(VENV)
	sed -E 's/ +--hash=[^ ]+//g' $(OPS_TOOL)/requirements.lock > $(VENV)/litellm-ops-requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r $(VENV)/litellm-ops-requirements.txt \
	  || { echo "make: pip could not install the tool environment (its error is above): the machine needs access" \
	    "to PyPI, or to the index pip.conf names." >&2; exit 1; }
	touch $@

deploy-packages: preflight
	@$(call apt_ensure,$(DEPLOY_PACKAGES))

test-packages: root-or-sudo
	@$(call apt_ensure,$(TEST_PACKAGES))

# What a newcomer's machine must give before anything is installed, each missing part as one message:
# root or sudo, and a Debian release the roles support (those with a roles/postgresql/vars/Debian-N.yml).
SUPPORTED_RELEASES := $(sort $(patsubst roles/postgresql/vars/Debian-%.yml,%,$(wildcard roles/postgresql/vars/Debian-*.yml)))

preflight: root-or-sudo
	@. /etc/os-release 2>/dev/null; \
	if [ "$${ID:-}" != debian ] || ! echo " $(SUPPORTED_RELEASES) " | grep -q " $${VERSION_ID:-none} "; then \
	  echo "make deploy: this machine runs $${PRETTY_NAME:-an unknown system}; the gateway supports Debian" \
	    "$(subst $(eval) ,/,$(SUPPORTED_RELEASES)) (see README.md)." >&2; exit 1; fi

root-or-sudo:
	@if [ "$$(id -u)" != 0 ] && ! { command -v sudo >/dev/null && sudo -v 2>/dev/null; }; then \
	  echo "make: installing Debian packages needs root: run it as root, or as a user that may use sudo." >&2; \
	  exit 1; fi

# Starts the Debian cluster (no systemd needed) and (re)sets the test role's generated password.
test-postgres: test-packages
	@mkdir -p $(TEST_CACHE) && chmod 700 $(TEST_CACHE)
	@test -s $(PG_TEST_PASSWORD_FILE) || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > $(PG_TEST_PASSWORD_FILE))
	@cluster=$$(pg_lsclusters -h | awk 'NR==1 {print $$1" "$$2}'); \
	test -n "$$cluster" || { echo "No PostgreSQL cluster: apt-get install postgresql creates one." >&2; exit 1; }; \
	pg_lsclusters -h | awk 'NR==1 {exit $$4 != "online"}' || $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$cluster start
	@$(AS_POSTGRES) psql -q -v ON_ERROR_STOP=1 -v user=$(PG_TEST_USER) -v password="$$(cat $(PG_TEST_PASSWORD_FILE))" \
	  < tests/modules/test-role.sql

test-wheels:
	@mkdir -p $(TEST_CACHE)/wheels
	@cd $(TEST_CACHE)/wheels && for spec in $(TEST_WHEELS); do \
	  ls "$$(echo $${spec%%==*} | tr - _)-$${spec##*==}-"*.whl >/dev/null 2>&1 || \
	  $(BIN)/pip download --quiet --disable-pip-version-check --no-deps -d . "$$spec" || exit 1; done

# One virtual environment per LiteLLM release in TEST_ORACLES, with litellm[proxy] as LiteLLM installs it
# and psycopg2, as the proxy's own environment has them (the model-table benchmark runs there).
test-oracles:
	@for version in $(TEST_ORACLES); do dir=$(TEST_CACHE)/oracle-$$version; \
	  test -f $$dir/.installed && continue; echo "Installing LiteLLM $$version for the module tests"; \
	  rm -rf $$dir && $(PYTHON) -m venv $$dir && \
	  $$dir/bin/pip install --quiet --disable-pip-version-check "litellm[proxy]==$$version" psycopg2-binary==2.9.13 && \
	  touch $$dir/.installed || exit 1; done

clean: ## Remove the tool environment (the test image cache stays in ~/.cache/litellm-gateway)
	rm -rf $(VENV)

# Installs the Debian packages of $(1) that are missing, and only those.
define apt_ensure
missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
  echo "Installing Debian packages: $$missing"; \
  { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; } \
    || { echo "make: apt-get could not install $$missing (its error is above): the machine needs access to" \
      "Debian's package mirrors." >&2; exit 1; }; \
fi
endef
