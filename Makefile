# The two commands a newcomer needs: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo

.PHONY: test demo kube sp okta-sdk tools promtool crane actionlint alerts image image-dev deny fmt-check clippy unit crds deploy docs bench bench-scale bench-scale-limits chaos fuzz install-plugin clean-testenv

## test: every check CI runs (fmt, clippy, cargo-deny, unit and integration tests, among them the alerts'
## promtool tests, the dashboard's, the image's and the release workflow's); builds what it needs first.
test: kube sp okta-sdk tools fmt-check clippy deny image-dev unit

## kube: build etcd, kube-apiserver, kube-controller-manager, kubectl and helm once per machine.
kube:
	bash tests/kube/build.sh >/dev/null

## sp: the SAML service providers of the sign-in probe (xmlsec1 via apt-get, pysaml2 in a cached venv).
sp:
	bash tests/sp/setup.sh >/dev/null

## okta-sdk: Okta's Python SDK (PyPI okta, pinned) in a cached venv: the client of okta-sim's SDK test.
okta-sdk:
	bash tests/okta-sdk/setup.sh >/dev/null

## tools: promtool, crane and actionlint, each built from its pinned Go module (tests/tools/NAME) once per machine.
tools: promtool crane actionlint
promtool crane actionlint:
	bash tests/tools/build.sh $@ >/dev/null

## alerts: the chart's PrometheusRule through `promtool check rules` and its unit tests (`promtool test rules`).
alerts: kube promtool
	SAMLCRED_KUBE_BIN="$$(bash tests/kube/build.sh)" $(CARGO) test --locked --test alerts

## image: the operator image without a Docker engine: a static release samlcred in a minimal OCI image
## (no shell, user 65532) assembled by crane, as target/image/oci and target/image/samlcred-VERSION-ARCH.tar.
image: crane
	CARGO="$(CARGO)" VERSION="$(VERSION)" bash scripts/image.sh

## image-dev: the same image from a debug build (quicker) in target/image-dev, for tests/image.rs in make test.
image-dev: crane
	CARGO="$(CARGO)" PROFILE=dev OUT=target/image-dev bash scripts/image.sh

## deny: cargo-deny (pinned, installed once per machine) checks licenses, bans, sources and advisories
## (offline, from the RustSec snapshot in ../shared/advisory-db), and that samlcred links no rsa.
deny:
	CARGO="$(CARGO)" bash tests/deny/check.sh

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: kube sp okta-sdk tools image-dev
	SAMLCRED_KUBE_BIN="$$(bash tests/kube/build.sh)" SAMLCRED_SP_PYTHON="$$(bash tests/sp/setup.sh)" \
		SAMLCRED_OKTA_SDK_PYTHON="$$(bash tests/okta-sdk/setup.sh)" \
		SAMLCRED_PROMTOOL="$$(bash tests/tools/build.sh promtool)" SAMLCRED_CRANE="$$(bash tests/tools/build.sh crane)" \
		SAMLCRED_ACTIONLINT="$$(bash tests/tools/build.sh actionlint)" \
		$(CARGO) test --workspace --locked --no-fail-fast

## demo: run samlcred's main job locally (control plane + Okta simulator); Ctrl-C stops it.
demo: kube
	bash scripts/demo.sh

## crds: regenerate crds/ from the Rust types.
crds:
	$(CARGO) run --quiet --bin samlcred -- crds > crds/samlcred.io.yaml
	$(MAKE) deploy docs

## docs: regenerate docs/reference/crds.md from the Rust types (tests/docs.rs fails when it drifts).
docs:
	$(CARGO) run --quiet --locked --example crd_reference > docs/reference/crds.md

## deploy: copy crds/ into charts/samlcred/crds and render deploy/ from the chart (tests/chart.rs fails when they drift).
deploy: kube
	HELM="$$(bash tests/kube/build.sh)/helm" bash scripts/render-deploy.sh

## bench: the benchmarks, in release mode; they print their figures.
bench:
	$(CARGO) bench --workspace

## bench-scale: the fleet benchmark (release): SCALE_N credentials (default 1000) against a floor client;
## prints each figure beside its target (MISSED when it misses) and writes target/bench-scale/result.json.
bench-scale: kube
	$(CARGO) build --release --locked --bin samlcred
	SAMLCRED_KUBE_BIN="$$(bash tests/kube/build.sh)" $(CARGO) bench --locked --bench scale

## bench-scale-limits: 1000 apps onboarded and rotated under Okta's real bucket sizes (windows shortened).
bench-scale-limits: kube
	$(CARGO) build --release --locked --bin samlcred
	SAMLCRED_KUBE_BIN="$$(bash tests/kube/build.sh)" SCALE_PHASE=limits $(CARGO) bench --locked --bench scale

## chaos: the proof under faults (issue 13) at full size: CHAOS_TRIALS random kill -9 trials (100),
## the Okta fault matrix with CHAOS_STORM_SECONDS storms (20), CHAOS_RESTARTS API server and etcd
## restarts (3), failover of the leader under CHAOS_FAILOVER_N credentials (1000). Prints each
## figure beside its target (`make test` runs the same files, small). See docs/chaos.md.
CHAOS_TRIALS ?= 100
CHAOS_STORM_SECONDS ?= 20
CHAOS_RESTARTS ?= 3
CHAOS_FAILOVER_N ?= 1000
CHAOS_LEASE_SECONDS ?= 15
chaos: kube
	start=$$SECONDS; \
	SAMLCRED_KUBE_BIN="$$(bash tests/kube/build.sh)" CHAOS_TRIALS=$(CHAOS_TRIALS) \
		CHAOS_STORM_SECONDS=$(CHAOS_STORM_SECONDS) CHAOS_RESTARTS=$(CHAOS_RESTARTS) CHAOS_FAILOVER_N=$(CHAOS_FAILOVER_N) \
		CHAOS_LEASE_SECONDS=$(CHAOS_LEASE_SECONDS) \
		$(CARGO) test --locked --test chaos_crashes --test chaos_okta --test chaos_control_plane --test chaos_failover \
		-- --nocapture --test-threads=1; \
	echo "make chaos took $$((SECONDS - start))s"

## fuzz: every fuzz target of src/fuzz_tests.rs (decoders of Okta answers, metadata, headers,
## durations, keys) for FUZZ_SECONDS each (60), seeded from tests/fuzz/corpus; 0 panics.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_CASES=256 $(CARGO) test --locked --lib fuzz_tests -- --nocapture --test-threads=1

## install-plugin: install samlcred and the kubectl plugin kubectl-samlcred (the same binary, named by argv[0]).
install-plugin:
	$(CARGO) install --path . --locked --bin samlcred
	ln -sf "$$(command -v samlcred)" "$$(dirname "$$(command -v samlcred)")/kubectl-samlcred"

clean-testenv:
	rm -rf .testenv /tmp/samlcred-testenv-*
