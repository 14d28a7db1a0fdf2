package nvmltest

import (
	"regexp"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

var uuidRE = regexp.MustCompile(`^(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestA100MIG1g(t *testing.T) {
	l := NewA100(t, "0123abcd", A100MIG1g(2))
	if ret := l.Init(); ret != nvml.SUCCESS {
		t.Fatalf("Init: %v", ret)
	}
	n, ret := l.DeviceGetCount()
	if ret != nvml.SUCCESS || n != 2 {
		t.Fatalf("DeviceGetCount = %d, %v; want 2", n, ret)
	}
	for i, g := range l.GPUs {
		if !uuidRE.MatchString(g.UUID) {
			t.Errorf("GPU %d UUID %q is not a UUID", i, g.UUID)
		}
		if mode, _, ret := g.GetMigMode(); ret != nvml.SUCCESS || mode != nvml.DEVICE_MIG_ENABLE {
			t.Errorf("GPU %d MIG mode %d, %v", i, mode, ret)
		}
		if len(g.MIGs) != 7 {
			t.Fatalf("GPU %d has %d MIG devices, want 7", i, len(g.MIGs))
		}
		for k, m := range g.MIGs {
			if !uuidRE.MatchString(m.UUID) {
				t.Errorf("MIG %d/%d UUID %q is not a UUID", i, k, m.UUID)
			}
			if gi, _ := m.GetGpuInstanceId(); gi != 7+k {
				t.Errorf("MIG %d/%d GPU instance %d, want %d", i, k, gi, 7+k)
			}
			if name, _ := m.GetName(); name != "NVIDIA A100-SXM4-80GB MIG 1g.10gb" {
				t.Errorf("MIG %d/%d name %q", i, k, name)
			}
			if mem, _ := m.GetMemoryInfo(); mem.Total != 9728*MiB {
				t.Errorf("MIG %d/%d memory %d, want 9728 MiB", i, k, mem.Total)
			}
			if _, ret := g.GetGpuInstanceById(7 + k); ret != nvml.SUCCESS {
				t.Errorf("GPU %d: GPU instance %d: %v", i, 7+k, ret)
			}
		}
	}
	if st := l.Stats(); st.Inits != 1 {
		t.Errorf("Inits %d, want 1", st.Inits)
	}
}

func TestMIGNames(t *testing.T) {
	for _, tc := range []struct {
		spec MIGSpec
		want string
	}{
		{MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE}, "1g.10gb"},
		{MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_3_SLICE}, "3g.40gb"},
		{MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_3_SLICE, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE}, "1c.3g.40gb"},
		{MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_7_SLICE, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_4_SLICE}, "4c.7g.80gb"},
		{MIGSpec{GIProfile: nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1, CIProfile: nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE}, "1g.10gb+me"},
	} {
		if got := migProfileName(tc.spec); got != tc.want {
			t.Errorf("profile name of %+v = %q, want %q", tc.spec, got, tc.want)
		}
	}
}

func TestFailAndEvents(t *testing.T) {
	l := NewA100(t, "a100a100", A100Specs())
	g := l.GPUs[3]
	if p, ret := g.GetPowerUsage(); ret != nvml.SUCCESS || p != 60000+3*45250 {
		t.Errorf("power %d, %v", p, ret)
	}
	g.Fail["GetPowerUsage"] = nvml.ERROR_GPU_IS_LOST
	if _, ret := g.GetPowerUsage(); ret != nvml.ERROR_GPU_IS_LOST {
		t.Errorf("failed call returned %v", ret)
	}
	set, _ := l.EventSetCreate()
	if ret := g.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
		t.Fatalf("RegisterEvents: %v", ret)
	}
	if !l.Events.Registered()[g.UUID] {
		t.Error("GPU not registered")
	}
	l.Events.Push(l.XID(3, 79))
	if ev, ret := set.Wait(0); ret != nvml.SUCCESS || ev.EventData != 79 || ev.Device != g.Device {
		t.Errorf("Wait = %+v, %v; want XID 79 of GPU 3", ev, ret)
	}
	if _, ret := set.Wait(0); ret != nvml.ERROR_TIMEOUT {
		t.Errorf("Wait on an empty set = %v, want a timeout", ret)
	}
	select {
	case <-l.Events.Idle():
	default:
		t.Error("an empty Wait did not report idle")
	}
	l.HideSymbol("nvmlGpmSampleGet")
	if err := l.LookupSymbol("nvmlGpmSampleGet"); err == nil {
		t.Error("hidden symbol found")
	}
	if ret := set.Free(); ret != nvml.SUCCESS || !l.Events.Freed() {
		t.Errorf("Free = %v, freed %v", ret, l.Events.Freed())
	}
}
