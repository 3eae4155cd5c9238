# Herald — the two commands a newcomer needs:
#   make run    build plugins + gateway + admin, start both on the embedded defaults (SQLite, ./data)
#   make test   install test dependencies, build everything, run all tests
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/herald/target
PLUGIN_OUT := $(CARGO_TARGET_DIR)/herald-plugins
# Every folder under plugins/ is a first-party plugin crate named herald-plugin-<folder>.
PLUGINS := $(notdir $(patsubst %/,%,$(wildcard plugins/*/)))
TEST_PLUGINS := hostile legacy
# Host-side crates: everything but the wasm plugins. Every host build uses this
# same set so that Cargo unifies features once and reuses the artifacts.
HOST := --workspace $(foreach p,$(PLUGINS) $(TEST_PLUGINS),--exclude herald-plugin-$(p)) --exclude herald-plugin-sdk
DATA ?= data

.PHONY: run test plugins gateway toolchain test-deps bench bench-distributed clean-data conformance new-plugin template-check

toolchain:
	@command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs"; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@# librdkafka (bundled, built with cmake) needs the curl headers, and OpenSSL (libssl-dev,
	@# found with pkg-config) for TLS and SASL SCRAM; deploy/services makes its test CA with openssl.
	@command -v cmake >/dev/null && command -v openssl >/dev/null && dpkg -s libcurl4-openssl-dev libssl-dev pkg-config >/dev/null 2>&1 || \
	  { apt-get update -qq && apt-get install -y -qq cmake libcurl4-openssl-dev libssl-dev pkg-config openssl; }

# Every plugin (first-party and test-only) as a wasm32-wasip2 component.
plugins: toolchain
	cargo build --profile plugin --target wasm32-wasip2 $(foreach p,$(PLUGINS) $(TEST_PLUGINS),-p herald-plugin-$(p))
	@mkdir -p $(PLUGIN_OUT) $(DATA)/plugins
	@for p in $(PLUGINS) $(TEST_PLUGINS); do cp $(CARGO_TARGET_DIR)/wasm32-wasip2/plugin/herald_plugin_$${p//-/_}.wasm $(PLUGIN_OUT)/$$p.wasm; done
	@for p in $(PLUGINS); do cp $(PLUGIN_OUT)/$$p.wasm $(DATA)/plugins/$$p.wasm; done

# TESTS=1 also builds the tests (what tests/run.sh does), so the features match.
gateway:
	cargo build --release $(HOST) --bins $(if $(TESTS),--tests)

# The gateway owns the embedded database; the admin shares it. Ctrl-C stops both.
# The demo's accounts post to this machine, so the admin's save-time check allows
# loopback here (the gateway still allows only its demo destinations at connect time).
run: plugins gateway
	@trap 'kill 0' INT TERM EXIT; \
	HERALD_DATA_DIR=$(DATA) $(CARGO_TARGET_DIR)/release/herald-gateway $(if $(CONFIG),--config $(CONFIG)) & \
	sleep 1; HERALD_ADMIN_DATA_DIR=$(DATA) HERALD_ADMIN_ALLOW_PRIVATE='["127.0.0.1"]' $(CARGO_TARGET_DIR)/release/herald-admin & \
	wait

# Test dependencies: a real SMTP server (aiosmtpd) for the e-mail tests; the Standard Webhooks
# project's own verifier (standardwebhooks) for the webhook signature tests;
# Java 17 and Maven for Kafka and Cassandra (deploy/services/); curl headers for librdkafka.
test-deps:
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet 'aiosmtpd==1.4.6'
	@python3 -c 'import standardwebhooks' 2>/dev/null || python3 -m pip install --quiet 'standardwebhooks==1.3.0'
	@command -v java >/dev/null && command -v mvn >/dev/null || { echo "Java 17 and Maven are needed for the Kafka/Cassandra tests (apt-get install openjdk-17-jdk-headless maven)"; exit 1; }

test: toolchain test-deps
	tests/run.sh

# The conformance kit over every first-party plugin that ships fixtures.
conformance: plugins gateway
	@fail=0; for p in $(PLUGINS); do \
	  if [ -d plugins/$$p/conformance ]; then \
	    $(CARGO_TARGET_DIR)/release/herald-plugin-check $(PLUGIN_OUT)/$$p.wasm --fixtures plugins/$$p/conformance || fail=1; \
	  else echo "plugins/$$p has no conformance/ fixtures"; fail=1; fi; \
	done; exit $$fail

# The vendor template builds on its own and passes the kit.
template-check: toolchain gateway
	cd sdk/template && cargo build --release --target wasm32-wasip2
	$(CARGO_TARGET_DIR)/release/herald-plugin-check $(CARGO_TARGET_DIR)/wasm32-wasip2/release/herald_plugin_template.wasm --fixtures sdk/template/conformance

# Start a plugin from the template: make new-plugin NAME=acme-sms
new-plugin:
	@test -n "$(NAME)" || { echo "usage: make new-plugin NAME=<name>"; exit 2; }
	@test ! -e plugins/$(NAME) || { echo "plugins/$(NAME) exists"; exit 2; }
	cp -r sdk/template plugins/$(NAME) && rm -f plugins/$(NAME)/Cargo.lock
	sed -i -e 's/herald-plugin-template/herald-plugin-$(NAME)/' -e 's|path = "../rust"|path = "../../sdk/rust"|' -e '/^# Standalone/,$$d' plugins/$(NAME)/Cargo.toml
	sed -i 's/"template"/"$(NAME)"/' plugins/$(NAME)/src/lib.rs
	@echo "plugins/$(NAME) created: edit src/lib.rs and conformance/, then: make conformance"

bench: plugins
	cargo build --release $(HOST) --bins
	$(CARGO_TARGET_DIR)/release/herald-bench --gateway $(CARGO_TARGET_DIR)/release/herald-gateway --plugins $(PLUGIN_OUT)

# The same bench on Kafka + Cassandra (deploy/services, started here if not running and
# then stopped again; services already running are used and left running).
BENCH_DIST_ARGS ?= --dispatchers 2 --tenants 8
bench-distributed: plugins
	cargo build --release $(HOST) --bins
	@started=""; trap 'for s in $$started; do deploy/services/$$s.sh stop; done' EXIT; \
	for s in kafka cassandra; do \
	  deploy/services/$$s.sh status >/dev/null 2>&1 || { deploy/services/$$s.sh start && started="$$started $$s"; } || exit 1; \
	done; \
	deploy/services/kafka.sh wait && deploy/services/cassandra.sh wait && \
	$(CARGO_TARGET_DIR)/release/herald-bench --gateway $(CARGO_TARGET_DIR)/release/herald-gateway --plugins $(PLUGIN_OUT) \
	  --backend kafka-cql $(BENCH_DIST_ARGS)

clean-data:
	rm -rf $(DATA)
