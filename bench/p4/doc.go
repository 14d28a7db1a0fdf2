// Package p4 is benchmark P4 of docs/performance.md: the accounting API
// (`gpuledger api`, real authentication, loopback HTTP) over a ledger of
// 10 million hourly rows generated in PostgreSQL — the latency of
// /api/v1/usage for a project-month at a fixed 500 requests/s, and the
// peak resident memory of the server streaming a 1-million-row CSV export.
// Its code is all in its tests; `go test -bench P4` runs it.
package p4
