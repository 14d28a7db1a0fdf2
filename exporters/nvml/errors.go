package nvml

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gpuledger/gpuledger/exporters/metrics"
)

// gpuRef names a GPU in labels and logs: its index and, once read, UUID.
type gpuRef struct {
	index string
	uuid  string
}

type callKey struct {
	gpu  gpuRef
	call string
}

type logKey struct {
	call callKey
	ret  nvml.Return
}

// callErrors counts failed NVML calls per GPU and function, and logs each
// distinct failure (GPU, function, return code) once.
type callErrors struct {
	logger *slog.Logger
	mu     sync.Mutex
	counts map[callKey]uint64
	logged map[logKey]bool
}

func newCallErrors(logger *slog.Logger) *callErrors {
	return &callErrors{logger: logger, counts: map[callKey]uint64{}, logged: map[logKey]bool{}}
}

// note records a failed call.
func (e *callErrors) note(gpu gpuRef, call string, ret nvml.Return) {
	k := callKey{gpu: gpu, call: call}
	e.mu.Lock()
	e.counts[k]++
	first := !e.logged[logKey{k, ret}]
	e.logged[logKey{k, ret}] = true
	e.mu.Unlock()
	if first {
		e.logger.Warn("NVML call failed; counting further failures in gpuledger_gpu_nvml_errors_total",
			"gpu", gpu.index, "uuid", gpu.uuid, "call", call, "err", ret.Error())
	}
}

// logOnce logs a condition that is not counted (a missing optional
// feature that has a fallback), once per GPU, function and code.
func (e *callErrors) logOnce(gpu gpuRef, call string, ret nvml.Return, msg string) {
	k := logKey{callKey{gpu: gpu, call: call}, ret}
	e.mu.Lock()
	first := !e.logged[k]
	e.logged[k] = true
	e.mu.Unlock()
	if first {
		e.logger.Info(msg, "gpu", gpu.index, "uuid", gpu.uuid, "call", call, "err", ret.Error())
	}
}

// send emits the counters, in a stable order.
func (e *callErrors) send(ch chan<- prometheus.Metric, nodeName string) {
	e.mu.Lock()
	keys := make([]callKey, 0, len(e.counts))
	for k := range e.counts {
		keys = append(keys, k)
	}
	values := make([]uint64, len(keys))
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	for i, k := range keys {
		values[i] = e.counts[k]
	}
	e.mu.Unlock()
	for i, k := range keys {
		sendConst(ch, metrics.GPUNVMLErrors, prometheus.CounterValue, float64(values[i]),
			nodeName, k.gpu.index, k.gpu.uuid, k.call)
	}
}

func (k callKey) less(o callKey) bool {
	if k.gpu.index != o.gpu.index {
		return k.gpu.index < o.gpu.index
	}
	if k.gpu.uuid != o.gpu.uuid {
		return k.gpu.uuid < o.gpu.uuid
	}
	return k.call < o.call
}

// sendConst sends a constant metric; a label mismatch, a programming
// error, is dropped rather than panicking the scrape.
func sendConst(ch chan<- prometheus.Metric, desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	if m, err := prometheus.NewConstMetric(desc, t, v, labels...); err == nil {
		ch <- m
	}
}
