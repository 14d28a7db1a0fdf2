package node

import (
	"testing"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
)

func TestInventoryLookup(t *testing.T) {
	inv := NewInventory()
	parent := "GPU-11111111-2222-3333-4444-555555555555"
	inv.SetDevices("nvml", []Device{
		{ID: "GPU-aaaa", Class: accounting.ClassGPU, GPUUUID: "GPU-aaaa", GPU: "0", Model: "NVIDIA A100-SXM4-80GB",
			GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000},
		{ID: "MIG-bbbb", Class: accounting.ClassMIG, GPUUUID: parent, GPU: "1", Model: "NVIDIA A100-SXM4-80GB",
			Profile: "1g.10gb", GPUInstanceID: 9, ComputeInstanceID: 0, WeightMilli: 143},
	})
	inv.SetDevices("fpga", []Device{{ID: "0000:3b:00.1", Class: accounting.ClassFPGA, GPU: "0000:3b:00.1",
		Model: "Alveo U55C", GPUInstanceID: -1, ComputeInstanceID: -1, WeightMilli: 1000}})

	cases := []struct {
		id      string
		want    string
		replica int
		ok      bool
	}{
		{"GPU-aaaa", "GPU-aaaa", -1, true},
		{"GPU-aaaa::3", "GPU-aaaa", 3, true},
		{"MIG-bbbb", "MIG-bbbb", -1, true},
		{"MIG-" + parent + "/9/0", "MIG-bbbb", -1, true},
		{"MIG-" + parent + "/9/1", "", -1, false},
		{"0000:3b:00.1", "0000:3b:00.1", -1, true},
		{"GPU-unknown", "", -1, false},
		{"", "", -1, false},
	}
	for _, c := range cases {
		d, replica, ok := inv.Lookup(c.id)
		if ok != c.ok || d.ID != c.want || replica != c.replica {
			t.Errorf("Lookup(%q) = %q, %d, %v; want %q, %d, %v", c.id, d.ID, replica, ok, c.want, c.replica, c.ok)
		}
	}
	if n := len(inv.Devices()); n != 3 {
		t.Errorf("%d devices, want 3", n)
	}

	// A source's new list replaces its old one, and leaves the others.
	inv.SetDevices("nvml", nil)
	if _, _, ok := inv.Lookup("MIG-" + parent + "/9/0"); ok {
		t.Error("legacy MIG ID still resolves after nvml withdrew its devices")
	}
	if devs := inv.Devices(); len(devs) != 1 || devs[0].ID != "0000:3b:00.1" {
		t.Errorf("devices after nvml withdrew: %+v, want the FPGA only", devs)
	}
}

func TestInventoryActivity(t *testing.T) {
	inv := NewInventory()
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	inv.SetActivity("nvml", t0, map[string]float64{"GPU-aaaa": 0.25})
	inv.SetActivity("dcgm", t0.Add(5*time.Second), map[string]float64{"GPU-aaaa": 0.5})
	a, ok := inv.Activity("GPU-aaaa", t0.Add(10*time.Second), 20*time.Second)
	if !ok || a.Ratio != 0.5 || a.Source != "dcgm" {
		t.Errorf("Activity = %+v, %v; want the latest (dcgm, 0.5)", a, ok)
	}
	if _, ok := inv.Activity("GPU-aaaa", t0.Add(time.Minute), 20*time.Second); ok {
		t.Error("activity 55 s old served with a 20 s maximum age")
	}
	if _, ok := inv.Activity("GPU-none", t0, time.Hour); ok {
		t.Error("activity of an unknown device")
	}
}
