// Package trace turns a window of a public GPU cluster trace into a
// simulator scenario: the Alibaba GPU v2023 pod and node lists
// (alibaba-v2023) and the Philly-derived Chronus job mix (philly-chronus).
//
// Importing is pure and deterministic: the readers parse CSV from an
// io.Reader, and Alibaba and Philly build a validated *scenario.Scenario from
// the parsed rows and Options. The same rows, options and seed give the same
// scenario, byte for byte once written. Tenants (projects and users), which
// the traces do not carry, are synthesised with a seeded generator; device
// placement is an event sweep in time order. docs/trace-import.md is the
// reference for every mapping rule.
package trace
