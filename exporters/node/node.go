// Package node is what the device sources of one node share with its
// attribution: the inventory of accountable devices (whole GPUs, MIG
// instances, FPGA cards) with their identity and accounting weight, and the
// latest activity of each. The NVML and FPGA collectors publish devices,
// the DCGM and NVML collectors publish activity, and the attribution
// collector joins the kubelet's device IDs to both. Sources publish from
// their own polling goroutines; a scrape only reads the latest snapshot.
package node

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gpuledger/gpuledger/accounting"
)

// Device is one accountable device of the node.
type Device struct {
	// ID is the device plugin's ID of the device: "GPU-<uuid>" for a whole
	// GPU, "MIG-<uuid>" for a MIG instance, the PCI address
	// ("0000:3b:00.1") for an FPGA card. Time-slicing replicas
	// ("<id>::<n>") and the old "MIG-GPU-<uuid>/<gi>/<ci>" form are
	// resolved to it with Inventory.Lookup.
	ID    string
	Class accounting.Class // gpu, mig or fpga
	// GPUUUID is the physical GPU: the device itself, or a MIG
	// instance's parent. Empty for an FPGA.
	GPUUUID string
	// GPU is the physical GPU's index on the node ("0", "1", …), or the
	// FPGA's PCI address.
	GPU   string
	Model string
	// Profile is the MIG profile ("1g.10gb"); empty otherwise.
	Profile string
	// GPUInstanceID and ComputeInstanceID identify a MIG instance on its
	// parent (-1 otherwise).
	GPUInstanceID, ComputeInstanceID int
	// WeightMilli is the accounting weight in milli-GPUs: 1000 for a
	// whole GPU or an FPGA card, a MIG instance's share of its parent.
	WeightMilli int64
}

// Inventory is the node's devices and their activity, published by the
// device sources by name and read by the attribution collector. The zero
// value is not usable; use NewInventory. It is safe for concurrent use.
type Inventory struct {
	mu       sync.RWMutex
	bySource map[string][]Device
	byID     map[string]Device
	// legacy maps "MIG-GPU-<uuid>/<gi>/<ci>" to the MIG instance's ID.
	legacy   map[string]string
	activity map[string]Activity
}

// Activity is the activity of a device (a whole GPU, or a MIG instance),
// as a source last measured it.
type Activity struct {
	Ratio  float64   // 0 (idle) to 1 (fully busy)
	Source string    // "dcgm" or "nvml"
	At     time.Time // when it was measured
}

// NewInventory returns an empty inventory.
func NewInventory() *Inventory {
	return &Inventory{bySource: map[string][]Device{}, byID: map[string]Device{},
		legacy: map[string]string{}, activity: map[string]Activity{}}
}

// SetDevices replaces the devices a source publishes (nil removes them).
func (inv *Inventory) SetDevices(source string, devs []Device) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if devs == nil {
		delete(inv.bySource, source)
	} else {
		inv.bySource[source] = slices.Clone(devs)
	}
	inv.byID = map[string]Device{}
	inv.legacy = map[string]string{}
	for _, src := range inv.bySource {
		for _, d := range src {
			inv.byID[d.ID] = d
			if d.Class == accounting.ClassMIG && d.GPUUUID != "" && d.GPUInstanceID >= 0 && d.ComputeInstanceID >= 0 {
				inv.legacy[legacyMIG(d.GPUUUID, d.GPUInstanceID, d.ComputeInstanceID)] = d.ID
			}
		}
	}
}

func legacyMIG(parent string, gi, ci int) string {
	return parent + "/" + strconv.Itoa(gi) + "/" + strconv.Itoa(ci)
}

// Devices returns every device, sorted by ID.
func (inv *Inventory) Devices() []Device {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := make([]Device, 0, len(inv.byID))
	for _, d := range inv.byID {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Lookup resolves a device plugin ID in any of its forms — the device's
// own ID, a time-slicing replica "<id>::<n>", the old
// "MIG-GPU-<uuid>/<gi>/<ci>" — to the device. replica is the replica
// number (-1 when the ID names no replica).
func (inv *Inventory) Lookup(id string) (d Device, replica int, ok bool) {
	replica = -1
	if base, n, isReplica := accounting.SplitReplica(id); isReplica {
		id, replica = base, n
	}
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	if d, ok := inv.byID[id]; ok {
		return d, replica, true
	}
	if parent, gi, ci, isLegacy := accounting.ParseLegacyMIG(id); isLegacy {
		if mid, ok := inv.legacy[legacyMIG(parent, gi, ci)]; ok {
			return inv.byID[mid], replica, true
		}
	}
	return Device{}, replica, false
}

// SetActivity records the activity of devices by ID, replacing what the
// same source published before for them.
func (inv *Inventory) SetActivity(source string, at time.Time, ratios map[string]float64) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	for id, r := range ratios {
		inv.activity[id] = Activity{Ratio: r, Source: source, At: at}
	}
}

// Activity returns the latest activity of a device (by its ID) not older
// than maxAge, whichever source measured it.
func (inv *Inventory) Activity(id string, now time.Time, maxAge time.Duration) (Activity, bool) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	a, ok := inv.activity[id]
	if !ok || now.Sub(a.At) > maxAge {
		return Activity{}, false
	}
	return a, true
}
