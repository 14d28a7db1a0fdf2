// Package p3 is benchmark P3 of docs/performance.md: one month of the
// Alibaba GPU v2023 trace answered by the ledger's report and by PromQL on
// a real Prometheus holding the exporters' backfilled history — the
// latency of each answer and its error against the ground truth. Its code
// is all in its tests; `go test -bench P3` runs it.
package p3
