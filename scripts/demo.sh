#!/usr/bin/env bash
# `make demo`: samlcred's main job on a laptop. Starts a real control plane (etcd + kube-apiserver +
# kube-controller-manager on loopback) and the Okta simulator, installs the CRDs, seeds a SAML app whose
# certificate expires in 30 days, and shows both. Ctrl-C stops everything.
# SAMLCRED_DEMO_ONESHOT=1 stops after the set-up instead of waiting (used by tests and CI smoke runs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="$root/.testenv"
mkdir -p "$state"
kube_bin=$(bash tests/kube/build.sh)
kubectl="$kube_bin/kubectl"

echo "==> building samlcred, okta-sim and testenv"
cargo build --quiet -p samlcred -p testenv -p okta-sim --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug

pids=()
stop() {
  trap - INT TERM EXIT
  echo "==> stopping"
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

echo "==> starting the control plane (logs in $state)"
SAMLCRED_KUBE_BIN="$kube_bin" "$target/testenv" --dir "$state" > "$state/testenv.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q '^export KUBECONFIG' "$state/testenv.out" 2>/dev/null && break; sleep 0.2; done
grep -q '^export KUBECONFIG' "$state/testenv.out" || { cat "$state/testenv.out"; exit 1; }
export KUBECONFIG="$state/kubeconfig"
head -1 "$state/testenv.out"

echo "==> starting the Okta simulator"
"$target/okta-sim" --api-token demo-token > "$state/okta-sim.url" 2> "$state/okta-sim.log" &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$state/okta-sim.url" ] && break; sleep 0.2; done
okta=$(head -1 "$state/okta-sim.url")
[ -n "$okta" ] || { cat "$state/okta-sim.log"; exit 1; }
echo "okta-sim at $okta (API token: demo-token; control API under $okta/__sim)"

now=$(date -u +%s)
seed=$(python3 -c "import json,datetime as d,sys; t=lambda s: d.datetime.fromtimestamp(s, d.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'); print(json.dumps({'label':'Grafana (demo)','keys':[{'not_before':t($now-335*86400),'not_after':t($now+30*86400)}],'active':0}))")
app=$(curl -fsS -X POST -H 'content-type: application/json' -d "$seed" "$okta/__sim/apps")
app_id=$(echo "$app" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "seeded SAML app $app_id; its active certificate expires in 30 days"

echo "==> installing the CRDs"
"$kubectl" apply --server-side -f crds/
"$kubectl" wait --for condition=established --timeout=60s crd --all
"$kubectl" get crds

echo "==> the app's signing keys, as Okta's API shows them"
curl -fsS -H 'Authorization: SSWS demo-token' "$okta/api/v1/apps/$app_id/credentials/keys" \
  | python3 -c 'import json,sys; [print("  kid", k["kid"], "expires", k["expiresAt"]) for k in json.load(sys.stdin)]'

echo "==> creating an OktaOrg and a SamlAppCredential (activation delay 20s, old cert kept 60s)"
ns=demo
"$kubectl" create namespace "$ns" --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
"$kubectl" -n "$ns" create secret generic okta-token --from-literal=token=demo-token --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
cat <<YAML | "$kubectl" apply -f -
apiVersion: samlcred.io/v1alpha1
kind: OktaOrg
metadata: {name: acme, namespace: $ns}
spec:
  url: $okta
  auth:
    apiToken:
      secretRef: {name: okta-token, key: token}
---
apiVersion: samlcred.io/v1alpha1
kind: SamlAppCredential
metadata: {name: grafana, namespace: $ns}
spec:
  orgRef: {name: acme}
  appId: $app_id
  secretName: grafana-saml-idp
  renewBefore: 720h
  activation: {policy: Automatic, delay: 20s}
  retainPrevious: 60s
YAML

echo "==> starting the operator: samlcred controller (logs in $state/controller.log)"
# The admission webhook is off here: the API server has no ValidatingWebhookConfiguration for it
# (the chart installs one); the controller itself still reports a bad spec as InvalidSpec.
"$target/samlcred" controller --allow-insecure-okta-http --log-format text \
  --metrics-bind-address 127.0.0.1:0 --health-bind-address 127.0.0.1:0 --webhook-bind-address '' \
  > "$state/controller.log" 2>&1 &
pids+=($!)

# What a user would watch: the credential's columns, its rotation phase, and the Secret's bundle.
show() {
  local phase certs kid
  phase=$("$kubectl" -n "$ns" get sac grafana -o jsonpath='{.status.rotation.phase}')
  kid=$("$kubectl" -n "$ns" get secret grafana-saml-idp -o jsonpath='{.data.kid}' 2>/dev/null | base64 -d 2>/dev/null || true)
  certs=$("$kubectl" -n "$ns" get secret grafana-saml-idp -o jsonpath='{.data.bundle\.pem}' 2>/dev/null | base64 -d 2>/dev/null | grep -c 'BEGIN CERTIFICATE' || true)
  echo "phase=${phase:-none} secret.kid=${kid:-<no secret>} bundle.pem certificates=${certs:-0}"
}
"$kubectl" -n "$ns" get sac
last=""
for _ in $(seq 1 180); do
  line=$(show)
  if [ "$line" != "$last" ]; then echo "  $(date -u +%H:%M:%S) $line"; last="$line"; fi
  rotated=$("$kubectl" -n "$ns" get sac grafana -o jsonpath='{.status.lastRotationTime}')
  certs=$(echo "$line" | sed 's/.*certificates=//')
  if [ -n "$rotated" ] && [ "$certs" = 1 ]; then break; fi
  sleep 1
done
"$kubectl" -n "$ns" get sac -o wide
"$kubectl" -n "$ns" get events --field-selector involvedObject.name=grafana --sort-by=.lastTimestamp | tail -8
echo "==> Okta now signs with: $(curl -fsS "$okta/__sim/apps/$app_id/active-kid")"

cat <<MSG
==> done: the certificate was rotated without a moment where Okta signed with a key the Secret lacked.
  export KUBECONFIG=$KUBECONFIG
  $kubectl -n $ns get sac,secret
  $kubectl -n $ns annotate sac grafana samlcred.io/rotate=\$(date +%s)   # rotate again
MSG
if [ "${SAMLCRED_DEMO_ONESHOT:-}" = 1 ]; then exit 0; fi
echo "Ctrl-C to stop."
wait
