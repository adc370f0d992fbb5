# cosyvoice.cluster: developer entry points. `make help` lists them.
# Needs root on a Debian 12 host (the lab uses network namespaces, taps, debootstrap).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV    := .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
LABCTL  := $(PY) tools/lab/labctl
COLL    := build/collections/ansible_collections/cosyvoice/cluster
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: help deps stale-copy docker-up images lint unit build-check molecule-docker lab-up lab-down lab-status \
        lab-selftest cluster test demo changelog clean preflight bench bench-report node-server sanity

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/.stamp: requirements.txt requirements-lock.txt tools/ci/install-deps.sh
	tools/ci/install-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -c requirements-lock.txt
	touch $@

$(COLL):
	mkdir -p $(dir $(COLL))
	ln -sfn $(CURDIR) $(COLL)

# A copy of cosyvoice.cluster installed in the user's collection path would
# shadow this checkout (ansible-lint, ansible-doc): remove it.
STALE := $(HOME)/.ansible/collections/ansible_collections/cosyvoice/cluster
stale-copy:
	@if [ -e $(STALE) ] && [ ! -L $(STALE) ]; then echo "removing stale copy $(STALE)"; rm -rf $(STALE); fi

deps: $(BIN)/.stamp $(COLL) stale-copy  ## install apt packages, the venv and the collection link (idempotent)

docker-up: deps  ## start dockerd if none answers
	tools/ci/dockerd.sh

images: deps docker-up  ## build or reuse the cached VM image and Docker base image
	$(LABCTL) image --docker

lint: deps  ## yamllint, ruff, ansible-lint (production profile)
	$(BIN)/yamllint -s .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check tools tests plugins benchmarks
	$(BIN)/ansible-lint --offline -q

sanity: deps  ## ansible-test sanity on the collection as Galaxy ships it (offline)
	tools/ci/sanity.sh

unit: deps  ## fast tests: no VM, no Docker
	$(BIN)/pytest -q tests/unit

node-server: deps  ## the node server with the espeak engine: real HTTP, real gradio_client
	$(BIN)/pytest -q tests/node_server

preflight: deps  ## bad inventory input is refused before anything changes (local hosts, no VM)
	$(BIN)/pytest -q tests/roles

build-check: deps  ## ansible-galaxy collection build, and what the tarball must not contain
	$(BIN)/pytest -q tests/build

molecule-docker: docker-up  ## the Docker platform scenario (systemd in a container, no --privileged)
	$(BIN)/pytest -q tests/molecule

lab-up: deps  ## boot the lab VMs (tools/lab/topologies/default.yml) and write inventories/lab/hosts.yml
	$(LABCTL) up

lab-down:  ## stop the lab VMs and remove their taps and namespace
	$(LABCTL) down

lab-status:  ## what the lab runs
	$(LABCTL) status || true

cluster: deps  ## Molecule `cluster` scenario on the VM lab: create, converge, verify (lab self-test), destroy
	$(BIN)/pytest -q --durations=0 tests/lab

test: deps docker-up  ## everything CI runs
	$(MAKE) lint
	$(MAKE) sanity
	$(BIN)/pytest --durations=40 tests/unit tests/roles tests/node_server tests/build tests/molecule tests/lab

demo: deps  ## bring up the lab, run playbooks/site.yml on it, synthesize through the VIP with gradio_client
	$(LABCTL) up
	$(BIN)/ansible-playbook playbooks/site.yml
	$(BIN)/ansible-playbook tests/lab/demo_synthesis.yml

bench: deps  ## every benchmark in the lab (brought up and converged first): benchmarks/REPORT.md, plots, README table
	$(LABCTL) up
	$(BIN)/ansible-playbook playbooks/site.yml
	$(PY) benchmarks/run.py

bench-report: deps  ## render benchmarks/REPORT.md, its plots and the README's table from benchmarks/results/
	$(PY) benchmarks/report.py

changelog: deps  ## lint the changelog fragments
	$(BIN)/antsibull-changelog lint

clean: lab-down  ## remove the lab, build outputs and the venv
	rm -rf build $(VENV) cosyvoice-cluster-*.tar.gz
