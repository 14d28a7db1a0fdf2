// Package accounting holds gpuledger's accounting arithmetic: resource
// classes, device weights (whole GPUs, MIG slices, fractional shares) and
// the integer units the ledger stores. It does no I/O, so every rule here is
// covered by table tests and shared by the simulator's ground truth, the
// exporters and the aggregator.
//
// Units are integers so that sums are exact and re-runs identical:
// a weight is expressed in milli-GPU (1000 = one whole GPU) and time in whole
// seconds, so allocated usage is an integer number of milli-GPU-seconds.
package accounting
