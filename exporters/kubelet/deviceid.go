package kubelet

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/gpuledger/gpuledger/accounting"
)

// Errors of ParseDeviceID.
var (
	// ErrUnknownResource: the extended resource is not an accelerator
	// gpuledger accounts (CPU-manager devices, SR-IOV NICs, amd.com/gpu…).
	// Callers skip such entries.
	ErrUnknownResource = errors.New("resource not accounted")
	// ErrBadDeviceID: the device ID has none of the forms the resource's
	// device plugin hands out.
	ErrBadDeviceID = errors.New("unrecognised device ID")
)

// Bounds of what ParseDeviceID accepts. Real IDs are far shorter.
const (
	maxResourceLen = 253 // a qualified Kubernetes name
	maxIDLen       = 256
)

// Kind is the form of a device ID.
type Kind string

// Device ID forms.
const (
	KindGPU       Kind = "gpu"        // GPU-<uuid>
	KindMIG       Kind = "mig"        // MIG-<uuid>
	KindLegacyMIG Kind = "mig-legacy" // MIG-GPU-<uuid>/<gi>/<ci> (old drivers)
	KindPCI       Kind = "pci"        // an FPGA's PCI address, 0000:3b:00.1
)

// DeviceID is a device ID of the pod-resources API, parsed with the
// resource it was handed out under.
type DeviceID struct {
	// Resource is the extended-resource name.
	Resource string
	// ID is the device ID exactly as the kubelet reports it.
	ID string
	// Base is the physical device's ID: ID without a time-slicing
	// replica suffix.
	Base string
	// Replica is the time-slicing replica number of "<id>::<n>", -1 when
	// the ID names no replica.
	Replica int
	Kind    Kind
	// Class is the accounting class: the resource's, except that a MIG
	// device handed out as nvidia.com/gpu (the "single" MIG strategy) is
	// mig and a time-slicing replica of a whole GPU is shared.
	Class accounting.Class
	// Profile is the MIG profile the resource names ("1g.10gb"); empty
	// for other resources and under the single strategy.
	Profile string
	// GPUUUID is the physical GPU as far as the ID alone tells:
	// Base for a GPU, the parent for the legacy MIG form, empty for
	// MIG-<uuid> (the inventory knows its parent) and FPGAs.
	GPUUUID string
	// GPUInstance and ComputeInstance are the MIG instance IDs of the
	// legacy form, -1 otherwise.
	GPUInstance, ComputeInstance int
}

// ParseDeviceID parses the device ID id handed out under resource. It
// accepts every form of the NVIDIA and AMD/Xilinx device plugins:
// GPU-<uuid> and its time-slicing replicas <id>::<n> (nvidia.com/gpu,
// nvidia.com/gpu.shared), MIG-<uuid> and MIG-GPU-<uuid>/<gi>/<ci>
// (nvidia.com/mig-<profile>, or nvidia.com/gpu under the single MIG
// strategy), and PCI addresses (amd.com/<shell>, xilinx.com/fpga-<shell>).
// A resource gpuledger does not account gives an error wrapping
// ErrUnknownResource; an ID of no known form, of a form the resource
// cannot hand out, or under a MIG resource naming no valid profile, one
// wrapping ErrBadDeviceID.
func ParseDeviceID(resource, id string) (DeviceID, error) {
	d := DeviceID{Resource: resource, ID: id, Replica: -1, GPUInstance: -1, ComputeInstance: -1}
	if len(resource) > maxResourceLen {
		return d, fmt.Errorf("%w: resource name of %d bytes", ErrUnknownResource, len(resource))
	}
	class, profile, ok := accounting.ResourceClass(resource)
	if !ok {
		return d, fmt.Errorf("%w: %q", ErrUnknownResource, resource)
	}
	if len(id) > maxIDLen {
		return d, fmt.Errorf("%w: %s device ID of %d bytes", ErrBadDeviceID, resource, len(id))
	}
	d.Base = id
	if base, n, isReplica := accounting.SplitReplica(id); isReplica {
		d.Base, d.Replica = base, n
	}
	d.Class = class
	if class == accounting.ClassFPGA {
		return d, d.parseFPGA()
	}
	if class == accounting.ClassMIG {
		// Time-sliced MIG devices are advertised as
		// nvidia.com/mig-<profile>.shared.
		d.Profile = strings.TrimSuffix(profile, ".shared")
		if _, err := accounting.ParseProfile(d.Profile); err != nil {
			return d, fmt.Errorf("%w: device %q under %s: %w", ErrBadDeviceID, id, resource, err)
		}
	}
	return d, d.parseNVIDIA()
}

func (d *DeviceID) parseFPGA() error {
	if d.Replica >= 0 {
		return fmt.Errorf("%w: %s hands out whole FPGA cards, not replica %q", ErrBadDeviceID, d.Resource, d.ID)
	}
	if !isPCIAddress(d.Base) {
		return fmt.Errorf("%w: %s device %q is not a PCI address (0000:3b:00.1)", ErrBadDeviceID, d.Resource, d.ID)
	}
	d.Kind = KindPCI
	return nil
}

func (d *DeviceID) parseNVIDIA() error {
	switch {
	case strings.HasPrefix(d.Base, "MIG-GPU-"):
		parent, gi, ci, ok := accounting.ParseLegacyMIG(d.Base)
		if !ok || !isUUID(strings.TrimPrefix(parent, "GPU-")) {
			return fmt.Errorf("%w: %s device %q: want MIG-GPU-<uuid>/<gi>/<ci>", ErrBadDeviceID, d.Resource, d.ID)
		}
		d.Kind, d.GPUUUID, d.GPUInstance, d.ComputeInstance = KindLegacyMIG, parent, gi, ci
	case strings.HasPrefix(d.Base, "MIG-"):
		if !isUUID(strings.TrimPrefix(d.Base, "MIG-")) {
			return fmt.Errorf("%w: %s device %q: want MIG-<uuid>", ErrBadDeviceID, d.Resource, d.ID)
		}
		d.Kind = KindMIG
	case strings.HasPrefix(d.Base, "GPU-"):
		if !isUUID(strings.TrimPrefix(d.Base, "GPU-")) {
			return fmt.Errorf("%w: %s device %q: want GPU-<uuid>", ErrBadDeviceID, d.Resource, d.ID)
		}
		d.Kind, d.GPUUUID = KindGPU, d.Base
	default:
		return fmt.Errorf("%w: %s device %q: want GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/<gi>/<ci>, optionally ::<replica>",
			ErrBadDeviceID, d.Resource, d.ID)
	}
	switch {
	case d.Kind == KindGPU && d.Class == accounting.ClassMIG:
		return fmt.Errorf("%w: %s hands out MIG devices, not the whole GPU %q", ErrBadDeviceID, d.Resource, d.ID)
	case d.Kind != KindGPU && d.Class != accounting.ClassMIG:
		// The single MIG strategy: MIG devices as nvidia.com/gpu.
		d.Class = accounting.ClassMIG
	case d.Kind == KindGPU && d.Replica >= 0:
		d.Class = accounting.ClassShared
	}
	return nil
}

// isUUID reports whether s can be the UUID part of an NVIDIA device ID:
// hexadecimal groups separated by dashes. NVML's UUIDs are 8-4-4-4-12;
// other lengths are accepted, as device plugins pass them through.
func isUUID(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		case c == '-' && s[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// isPCIAddress reports whether s is a PCI address domain:bus:device.function
// (0000:3b:00.1), the ID the FPGA device plugins hand out.
func isPCIAddress(s string) bool {
	dom, rest, ok1 := strings.Cut(s, ":")
	bus, rest, ok2 := strings.Cut(rest, ":")
	dev, fn, ok3 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !ok3 || len(dom) != 4 || len(bus) != 2 || len(dev) != 2 || len(fn) != 1 {
		return false
	}
	for _, part := range []string{dom, bus, dev} {
		if _, err := strconv.ParseUint(part, 16, 16); err != nil {
			return false
		}
	}
	if d, _ := strconv.ParseUint(dev, 16, 8); d > 0x1f {
		return false
	}
	return fn[0] >= '0' && fn[0] <= '7'
}
