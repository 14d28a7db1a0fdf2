package kubelet

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/gpuledger/gpuledger/accounting"
)

const (
	gpuA  = "GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f"
	migA  = "MIG-b7a4e3d2-5d1c-5a8b-9c1e-3f2a1b0c9d03"
	fpgaA = "0000:3b:00.1"
)

func TestParseDeviceID(t *testing.T) {
	cases := []struct {
		resource, id string
		want         DeviceID
	}{
		{"nvidia.com/gpu", gpuA, DeviceID{Base: gpuA, Replica: -1, Kind: KindGPU, Class: accounting.ClassGPU,
			GPUUUID: gpuA, GPUInstance: -1, ComputeInstance: -1}},
		{"nvidia.com/gpu", gpuA + "::3", DeviceID{Base: gpuA, Replica: 3, Kind: KindGPU, Class: accounting.ClassShared,
			GPUUUID: gpuA, GPUInstance: -1, ComputeInstance: -1}},
		{"nvidia.com/gpu.shared", gpuA + "::0", DeviceID{Base: gpuA, Replica: 0, Kind: KindGPU, Class: accounting.ClassShared,
			GPUUUID: gpuA, GPUInstance: -1, ComputeInstance: -1}},
		{"nvidia.com/gpu.shared", gpuA, DeviceID{Base: gpuA, Replica: -1, Kind: KindGPU, Class: accounting.ClassShared,
			GPUUUID: gpuA, GPUInstance: -1, ComputeInstance: -1}},
		{"nvidia.com/mig-1g.10gb", migA, DeviceID{Base: migA, Replica: -1, Kind: KindMIG, Class: accounting.ClassMIG,
			Profile: "1g.10gb", GPUInstance: -1, ComputeInstance: -1}},
		{"nvidia.com/mig-3g.40gb", "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0", DeviceID{
			Base: "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0", Replica: -1, Kind: KindLegacyMIG,
			Class: accounting.ClassMIG, Profile: "3g.40gb", GPUUUID: gpuA, GPUInstance: 2, ComputeInstance: 0}},
		// The single MIG strategy.
		{"nvidia.com/gpu", migA, DeviceID{Base: migA, Replica: -1, Kind: KindMIG, Class: accounting.ClassMIG,
			GPUInstance: -1, ComputeInstance: -1}},
		// Time-sliced MIG devices.
		{"nvidia.com/mig-1g.10gb.shared", migA + "::1", DeviceID{Base: migA, Replica: 1, Kind: KindMIG,
			Class: accounting.ClassMIG, Profile: "1g.10gb", GPUInstance: -1, ComputeInstance: -1}},
		{"amd.com/xilinx_u55c_gen3x16_xdma_base_3-0", fpgaA, DeviceID{Base: fpgaA, Replica: -1, Kind: KindPCI,
			Class: accounting.ClassFPGA, GPUInstance: -1, ComputeInstance: -1}},
		{"xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_4_1-0", "0000:AF:1f.7", DeviceID{Base: "0000:AF:1f.7", Replica: -1,
			Kind: KindPCI, Class: accounting.ClassFPGA, GPUInstance: -1, ComputeInstance: -1}},
	}
	for _, c := range cases {
		t.Run(c.resource+"/"+c.id, func(t *testing.T) {
			got, err := ParseDeviceID(c.resource, c.id)
			if err != nil {
				t.Fatalf("ParseDeviceID: %v", err)
			}
			c.want.Resource, c.want.ID = c.resource, c.id
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseDeviceIDErrors(t *testing.T) {
	cases := []struct {
		resource, id string
		want         error
	}{
		{"cpu", gpuA, ErrUnknownResource},
		{"amd.com/gpu", "0000:03:00.0", ErrUnknownResource},
		{"intel.com/sriov_netdevice", "0000:18:02.3", ErrUnknownResource},
		{"nvidia.com/mig-", migA, ErrUnknownResource},
		{"nvidia.com/mig-huge", migA, ErrBadDeviceID},
		{strings.Repeat("a", 300), gpuA, ErrUnknownResource},
		{"nvidia.com/gpu", "", ErrBadDeviceID},
		{"nvidia.com/gpu", "GPU-", ErrBadDeviceID},
		{"nvidia.com/gpu", "GPU-zz-12", ErrBadDeviceID},
		{"nvidia.com/gpu", "GPU-ab--cd", ErrBadDeviceID},
		{"nvidia.com/gpu", "GPU-abcd-", ErrBadDeviceID},
		{"nvidia.com/gpu", "gpu-5c89852c", ErrBadDeviceID},
		{"nvidia.com/gpu", gpuA + "::", ErrBadDeviceID},
		{"nvidia.com/gpu", gpuA + "::-1", ErrBadDeviceID},
		{"nvidia.com/gpu", gpuA + "::x", ErrBadDeviceID},
		{"nvidia.com/gpu", "::3", ErrBadDeviceID},
		{"nvidia.com/gpu", fpgaA, ErrBadDeviceID},
		{"nvidia.com/gpu", "0", ErrBadDeviceID},
		{"nvidia.com/gpu", "GPU-" + strings.Repeat("a", 300), ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", gpuA, ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", "MIG-GPU-5c89852c/2", ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", "MIG-GPU-5c89852c/a/0", ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", "MIG-GPU-/1/0", ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", "MIG-GPU-xyz/1/0", ErrBadDeviceID},
		{"nvidia.com/mig-1g.10gb", "MIG-", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", gpuA, ErrBadDeviceID},
		{"amd.com/xilinx_u55c", fpgaA + "::1", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "0000:3b:00", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "0000:3b:00.8", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "0000:3b:20.1", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "000:3b:00.1", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "0000:3g:00.1", ErrBadDeviceID},
		{"amd.com/xilinx_u55c", "0000:+3:00.1", ErrBadDeviceID},
		{"xilinx.com/fpga-u250", "0000:3b:00.1x", ErrBadDeviceID},
	}
	for _, c := range cases {
		t.Run(c.resource+"/"+c.id, func(t *testing.T) {
			_, err := ParseDeviceID(c.resource, c.id)
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseDeviceID(%q, %q) error %v, want %v", c.resource, c.id, err, c.want)
			}
			if !strings.Contains(err.Error(), strconv.Quote(c.id)) && !strings.Contains(err.Error(), "bytes") &&
				!errors.Is(err, ErrUnknownResource) {
				t.Errorf("error %q does not name the device ID", err)
			}
		})
	}
}

func FuzzParseDeviceID(f *testing.F) {
	f.Add("nvidia.com/gpu", gpuA)
	f.Add("nvidia.com/gpu.shared", gpuA+"::2")
	f.Add("nvidia.com/mig-1g.10gb", migA)
	f.Add("nvidia.com/mig-3g.40gb", "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/2/0")
	f.Add("amd.com/xilinx_u55c_gen3x16_xdma_base_3-0", fpgaA)
	f.Fuzz(func(t *testing.T, resource, id string) {
		d, err := ParseDeviceID(resource, id)
		if err != nil {
			if !errors.Is(err, ErrUnknownResource) && !errors.Is(err, ErrBadDeviceID) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		if d.ID != id || d.Resource != resource || !d.Class.Valid() || d.Class == accounting.ClassOffload {
			t.Fatalf("inconsistent %+v", d)
		}
		switch {
		case d.Replica < 0 && d.Base != id:
			t.Fatalf("base %q of %q without replica", d.Base, id)
		case d.Replica >= 0 && d.Base+"::"+strconv.Itoa(d.Replica) != id && !strings.HasPrefix(id, d.Base+"::"):
			t.Fatalf("base %q replica %d do not make %q", d.Base, d.Replica, id)
		}
		switch d.Kind {
		case KindPCI:
			if d.Class != accounting.ClassFPGA || !isPCIAddress(d.Base) || d.Replica >= 0 {
				t.Fatalf("bad FPGA %+v", d)
			}
		case KindGPU:
			if d.GPUUUID != d.Base || d.Class == accounting.ClassMIG || d.Class == accounting.ClassFPGA {
				t.Fatalf("bad GPU %+v", d)
			}
		case KindMIG:
			if d.Class != accounting.ClassMIG || d.GPUUUID != "" {
				t.Fatalf("bad MIG %+v", d)
			}
		case KindLegacyMIG:
			if d.Class != accounting.ClassMIG || d.GPUInstance < 0 || d.ComputeInstance < 0 || !strings.HasPrefix(d.GPUUUID, "GPU-") {
				t.Fatalf("bad legacy MIG %+v", d)
			}
		default:
			t.Fatalf("no kind: %+v", d)
		}
		if d.Class == accounting.ClassMIG && d.Profile != "" {
			if _, err := accounting.ParseProfile(d.Profile); err != nil {
				t.Fatalf("profile %q: %v", d.Profile, err)
			}
		}
	})
}
