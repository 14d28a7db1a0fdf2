package accounting

import (
	"strconv"
	"strings"
)

// Kubernetes extended-resource names for accelerators.
const (
	ResourceGPU       = "nvidia.com/gpu"
	ResourceGPUShared = "nvidia.com/gpu.shared"
	ResourceMIGPrefix = "nvidia.com/mig-"
)

// ResourceClass returns the class of a device held under a Kubernetes
// extended-resource name, and for MIG resources the profile it names.
// ok is false for resources gpuledger does not account.
func ResourceClass(resource string) (class Class, profile string, ok bool) {
	switch {
	case resource == ResourceGPU:
		return ClassGPU, "", true
	case resource == ResourceGPUShared:
		return ClassShared, "", true
	case strings.HasPrefix(resource, ResourceMIGPrefix):
		p := strings.TrimPrefix(resource, ResourceMIGPrefix)
		if p == "" {
			return "", "", false
		}
		return ClassMIG, p, true
	case resource == "amd.com/gpu":
		// AMD GPUs (ROCm device plugin) are not FPGAs, and not accounted.
		return "", "", false
	case len(resource) > len("amd.com/") && strings.HasPrefix(resource, "amd.com/"),
		len(resource) > len("xilinx.com/") && strings.HasPrefix(resource, "xilinx.com/"):
		return ClassFPGA, "", true
	}
	return "", "", false
}

// SplitReplica splits a time-slicing replica device ID "<id>::<n>" into the
// physical device ID and the replica number. ok is false when id carries no
// replica suffix.
func SplitReplica(id string) (base string, replica int, ok bool) {
	i := strings.LastIndex(id, "::")
	if i < 0 {
		return id, 0, false
	}
	n, err := strconv.Atoi(id[i+2:])
	if err != nil || n < 0 {
		return id, 0, false
	}
	return id[:i], n, true
}

// ParseLegacyMIG parses the MIG device ID form of old drivers,
// "MIG-GPU-<uuid>/<gi>/<ci>", into the parent GPU UUID and instance IDs.
func ParseLegacyMIG(id string) (parent string, gi, ci int, ok bool) {
	rest, found := strings.CutPrefix(id, "MIG-GPU-")
	if !found {
		return "", 0, 0, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return "", 0, 0, false
	}
	g, err1 := strconv.Atoi(parts[1])
	c, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || g < 0 || c < 0 || parts[0] == "" {
		return "", 0, 0, false
	}
	return "GPU-" + parts[0], g, c, true
}
