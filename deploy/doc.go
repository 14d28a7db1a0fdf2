// Package deploy holds gpuledger's deployment: the Helm chart
// helm/gpuledger and the plain manifests under manifests/, rendered from it.
//
// Some files of the chart and the manifests are generated: the alert rules
// (copied from alerts/gpuledger-rules.yaml into helm/gpuledger/files/), the
// Grafana dashboards (copied from dashboards/generated/ into
// helm/gpuledger/dashboards/) and the manifests (the chart rendered with
// manifests/values.yaml). go generate ./deploy rewrites them; the package's
// tests fail when a committed copy drifts, and render the chart with
// Helm's Go packages under several sets of values, decoding every object
// strictly into the Kubernetes API types. The package has no code of its
// own: everything is in its tests.
package deploy

//go:generate go test -count=1 -run ^TestGenerated$ . -update
