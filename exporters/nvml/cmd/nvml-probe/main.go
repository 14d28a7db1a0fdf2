// Command nvml-probe records what the NVML source sees on a GPU machine:
// it opens the system's libnvidia-ml.so.1, lists the GPUs, their MIG mode,
// GPU-instance profiles and MIG devices on stderr, then runs the nvml
// collector for two polls (so that GPM activity has an interval) and
// writes its exposition to stdout:
//
//	nvml-probe > h200.prom 2> h200.txt
//
// Without the library it says "NVML unavailable" and exits with status 2.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/gpuledger/gpuledger/exporters/collector"
	"github.com/gpuledger/gpuledger/exporters/node"
	nvmlsrc "github.com/gpuledger/gpuledger/exporters/nvml"
)

func main() {
	host, _ := os.Hostname()
	nodeName := flag.String("node", host, "node label of the series")
	interval := flag.Duration("interval", 2*time.Second, "poll interval (GPM activity is measured over one)")
	flag.Parse()
	os.Exit(run(*nodeName, *interval, os.Stdout, os.Stderr))
}

func run(nodeName string, interval time.Duration, stdout, stderr io.Writer) int {
	if nodeName == "" {
		nodeName = "probe"
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	lib := nvml.New()
	inv := node.NewInventory()
	c, err := nvmlsrc.New(lib, nvmlsrc.Options{Node: nodeName, Inventory: inv, Interval: interval, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "nvml-probe: %v\n", err)
		return 1
	}
	if err := c.Err(); err != nil {
		fmt.Fprintf(stderr, "nvml-probe: %v\n", err)
		return 2
	}
	defer c.Close()
	describe(lib, stderr)

	if err := c.Start(context.Background()); err != nil {
		fmt.Fprintf(stderr, "nvml-probe: %v\n", err)
		return 1
	}
	time.Sleep(interval + interval/2) // a second poll, for GPM
	fmt.Fprintln(stderr, "\n== inventory")
	for _, d := range inv.Devices() {
		a, ok := inv.Activity(d.ID, time.Now(), 2*interval)
		fmt.Fprintf(stderr, "%s class=%s gpu=%s parent=%s model=%q profile=%q gi=%d ci=%d weight=%d activity=%v(%v)\n",
			d.ID, d.Class, d.GPU, d.GPUUUID, d.Model, d.Profile, d.GPUInstanceID, d.ComputeInstanceID, d.WeightMilli, a.Ratio, ok)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector.NewExporter(map[string]collector.Collector{"nvml": c}, 0, logger))
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintf(stderr, "nvml-probe: gather: %v\n", err)
		return 1
	}
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(stdout, mf); err != nil {
			fmt.Fprintf(stderr, "nvml-probe: write: %v\n", err)
			return 1
		}
	}
	if err := c.Update(make(chan prometheus.Metric, 4096)); err != nil {
		fmt.Fprintf(stderr, "nvml-probe: the collector failed: %v\n", err)
		return 1
	}
	return 0
}

// describe lists what NVML reports, raw, for checking the collector's
// reading of it.
func describe(lib nvml.Interface, w io.Writer) {
	driver, ret := lib.SystemGetDriverVersion()
	fmt.Fprintf(w, "== driver %s (%v)\n", driver, ret)
	version, ret := lib.SystemGetNVMLVersion()
	fmt.Fprintf(w, "== NVML %s (%v)\n", version, ret)
	hasGPM := true
	for _, sym := range []string{"nvmlGpmQueryDeviceSupport", "nvmlGpmMigSampleGet", "nvmlGpmMetricsGet"} {
		err := lib.Extensions().LookupSymbol(sym)
		fmt.Fprintf(w, "symbol %s: %v\n", sym, err)
		hasGPM = hasGPM && err == nil
	}
	count, ret := lib.DeviceGetCount()
	fmt.Fprintf(w, "== %d GPUs (%v)\n", count, ret)
	for i := range count {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			fmt.Fprintf(w, "GPU %d: handle: %v\n", i, ret)
			continue
		}
		describeGPU(i, dev, hasGPM, w)
	}
}

func describeGPU(i int, dev nvml.Device, hasGPM bool, w io.Writer) {
	uuid, ret1 := dev.GetUUID()
	name, ret2 := dev.GetName()
	cur, pend, ret3 := dev.GetMigMode()
	mem, ret4 := dev.GetMemoryInfo()
	gpm, ret5 := nvml.GpmSupport{}, nvml.ERROR_FUNCTION_NOT_FOUND
	if hasGPM { // calling a function an old driver lacks would crash
		gpm, ret5 = dev.GpmQueryDeviceSupport()
	}
	fmt.Fprintf(w, "\nGPU %d uuid=%s(%v) name=%q(%v) mig=%d/%d(%v) memory total=%d used=%d(%v) gpm=%d(%v)\n",
		i, uuid, ret1, name, ret2, cur, pend, ret3, mem.Total, mem.Used, ret4, gpm.IsSupportedDevice, ret5)
	power, ret := dev.GetPowerUsage()
	fmt.Fprintf(w, "  power %d mW (%v)\n", power, ret)
	energy, ret := dev.GetTotalEnergyConsumption()
	fmt.Fprintf(w, "  energy %d mJ (%v)\n", energy, ret)
	util, ret := dev.GetUtilizationRates()
	fmt.Fprintf(w, "  utilization %+v (%v)\n", util, ret)
	for idx := range nvml.GPU_INSTANCE_PROFILE_COUNT {
		p, ret := dev.GetGpuInstanceProfileInfo(idx)
		if ret != nvml.SUCCESS {
			continue
		}
		fmt.Fprintf(w, "  GI profile index=%d id=%d slices=%d instances=%d SMs=%d memory=%d MiB\n",
			idx, p.Id, p.SliceCount, p.InstanceCount, p.MultiprocessorCount, p.MemorySizeMB)
	}
	if cur != nvml.DEVICE_MIG_ENABLE {
		return
	}
	n, ret := dev.GetMaxMigDeviceCount()
	fmt.Fprintf(w, "  max MIG devices %d (%v)\n", n, ret)
	for j := range n {
		mig, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret != nvml.SUCCESS {
			continue
		}
		muuid, _ := mig.GetUUID()
		mname, _ := mig.GetName()
		gi, reti := mig.GetGpuInstanceId()
		ci, retc := mig.GetComputeInstanceId()
		attrs, reta := mig.GetAttributes()
		mmem, retm := mig.GetMemoryInfo()
		fmt.Fprintf(w, "  MIG %d uuid=%s name=%q gi=%d(%v) ci=%d(%v) attributes=%+v(%v) memory total=%d used=%d(%v)\n",
			j, muuid, mname, gi, reti, ci, retc, attrs, reta, mmem.Total, mmem.Used, retm)
		if h, ret := dev.GetGpuInstanceById(gi); ret == nvml.SUCCESS {
			info, ret := h.GetInfo()
			fmt.Fprintf(w, "    GPU instance profile id=%d placement=%+v (%v)\n", info.ProfileId, info.Placement, ret)
		} else {
			fmt.Fprintf(w, "    GPU instance: %v\n", ret)
		}
	}
}
