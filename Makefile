# Herald — the two commands a newcomer needs:
#   make run    build plugins + gateway, start on the embedded defaults (SQLite, ./data)
#   make test   install test dependencies, build everything, run all tests
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/herald/target
PLUGIN_OUT := $(CARGO_TARGET_DIR)/herald-plugins
# Every folder under plugins/ is a first-party plugin crate named herald-plugin-<folder>.
PLUGINS := $(notdir $(patsubst %/,%,$(wildcard plugins/*/)))
TEST_PLUGINS := hostile legacy
DATA ?= data

.PHONY: run test plugins gateway toolchain test-deps bench clean-data

toolchain:
	@command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs"; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# Every plugin (first-party and test-only) as a wasm32-wasip2 component.
plugins: toolchain
	cargo build --profile plugin --target wasm32-wasip2 $(foreach p,$(PLUGINS) $(TEST_PLUGINS),-p herald-plugin-$(p))
	@mkdir -p $(PLUGIN_OUT) $(DATA)/plugins
	@for p in $(PLUGINS) $(TEST_PLUGINS); do cp $(CARGO_TARGET_DIR)/wasm32-wasip2/plugin/herald_plugin_$${p//-/_}.wasm $(PLUGIN_OUT)/$$p.wasm; done
	@for p in $(PLUGINS); do cp $(PLUGIN_OUT)/$$p.wasm $(DATA)/plugins/$$p.wasm; done

gateway:
	cargo build --release -p herald-gateway

run: plugins gateway
	HERALD_DATA_DIR=$(DATA) $(CARGO_TARGET_DIR)/release/herald-gateway $(if $(CONFIG),--config $(CONFIG))

# Test dependencies: a real SMTP server (aiosmtpd) for the e-mail tests.
test-deps:
	@python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet 'aiosmtpd==1.4.6'

test: toolchain test-deps plugins gateway
	HERALD_TEST_PLUGIN_DIR=$(PLUGIN_OUT) cargo test --release --workspace $(foreach p,$(PLUGINS) $(TEST_PLUGINS),--exclude herald-plugin-$(p)) --exclude herald-plugin-sdk
	cargo test --release -p herald-plugin-sdk $(foreach p,$(PLUGINS) hostile,-p herald-plugin-$(p))

bench: plugins
	cargo build --release -p herald-gateway -p herald-bench
	$(CARGO_TARGET_DIR)/release/herald-bench --gateway $(CARGO_TARGET_DIR)/release/herald-gateway --plugins $(PLUGIN_OUT)

clean-data:
	rm -rf $(DATA)
